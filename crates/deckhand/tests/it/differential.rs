//! The build context against Docker's own: the same trees built once by the docker CLI's
//! legacy builder (which packs the context itself) and once from deckhand's archive, compared
//! by what reaches the image. Hand-written cases for each rule, then seeded random ones.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bed::{unique, Bed};
use deckhand::image::context::Context;

/// Every case's Dockerfile: the whole context into the image.
const DOCKERFILE: &str = "FROM scratch\nCOPY . /ctx/\n";

/// Random cases per run (`DECKHAND_DIFF_CASES` to change), and builds in flight at once.
const RANDOM_CASES: usize = 36;
const AT_ONCE: usize = 3;

/// One thing in a case's tree, by its path in the context.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    File {
        path: Vec<u8>,
        mode: u32,
        mtime: Option<i64>,
    },
    Dir {
        path: Vec<u8>,
    },
    Symlink {
        path: Vec<u8>,
        target: Vec<u8>,
    },
    /// A second name for the file at `to`.
    HardLink {
        path: Vec<u8>,
        to: Vec<u8>,
    },
    Fifo {
        path: Vec<u8>,
    },
}

impl Node {
    fn path(&self) -> &[u8] {
        match self {
            Node::File { path, .. }
            | Node::Dir { path }
            | Node::Symlink { path, .. }
            | Node::HardLink { path, .. }
            | Node::Fifo { path } => path,
        }
    }
}

/// Where a case's Dockerfile is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DockerfileAt {
    /// `Dockerfile` at the context's root.
    Root,
    /// `docker/app.Dockerfile`, passed with `-f`.
    Inside,
    /// Outside the context, passed with `-f`.
    Outside,
}

/// A tree, its ignore file's lines (none: no `.dockerignore`) and its Dockerfile.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    nodes: Vec<Node>,
    ignore: Option<Vec<Vec<u8>>>,
    dockerfile: DockerfileAt,
}

/// What one side's build gave: the image's `/ctx` tree, or a refusal.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Built(BTreeMap<String, Entry>),
    Refused(String),
}

/// One entry of the image's `/ctx`, as `docker export` writes it.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    kind: char,
    mode: u32,
    size: u64,
    link: Option<String>,
    /// Seconds; directories' times are the builder's, not the context's, and are left out.
    mtime: Option<i64>,
}

fn file(path: &str) -> Node {
    Node::File {
        path: path.as_bytes().to_vec(),
        mode: 0o644,
        mtime: None,
    }
}

fn case(name: &str, files: &[&str], ignore: &[&str]) -> Case {
    Case {
        name: name.to_string(),
        nodes: files.iter().map(|f| file(f)).collect(),
        ignore: Some(ignore.iter().map(|l| l.as_bytes().to_vec()).collect()),
        dockerfile: DockerfileAt::Root,
    }
}

/// Writes the case under `dir`: the context in `dir/ctx`, an outside Dockerfile in
/// `dir/elsewhere`. Returns the context and the `-f` path, if any.
fn materialize(c: &Case, dir: &Path) -> (PathBuf, Option<PathBuf>) {
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let at = |p: &[u8]| ctx.join(std::ffi::OsStr::from_bytes(p));
    let parent = |p: &Path| fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mut times = Vec::new();
    for n in &c.nodes {
        let p = at(n.path());
        match n {
            Node::File { path, mode, mtime } => {
                parent(&p);
                fs::write(&p, path).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                if let Some(t) = mtime {
                    times.push((p.clone(), *t));
                }
            }
            Node::Dir { .. } => fs::create_dir_all(&p).unwrap(),
            Node::Symlink { target, .. } => {
                parent(&p);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &p).unwrap();
            }
            Node::HardLink { to, .. } => {
                parent(&p);
                fs::hard_link(at(to), &p).unwrap();
            }
            Node::Fifo { .. } => {
                parent(&p);
                run_ok(Command::new("mkfifo").arg(&p));
            }
        }
    }
    // Times last: writing a hard link's second name would not change them, but a later
    // file in the same directory must not either.
    for (p, t) in times {
        run_ok(
            Command::new("touch")
                .args(["-m", "-d", &format!("@{t}")])
                .arg(&p),
        );
    }
    if let Some(lines) = &c.ignore {
        fs::write(ctx.join(".dockerignore"), lines.join(&b'\n')).unwrap();
    }
    let file = match c.dockerfile {
        DockerfileAt::Root => {
            fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
            None
        }
        DockerfileAt::Inside => {
            let f = ctx.join("docker/app.Dockerfile");
            parent(&f);
            fs::write(&f, DOCKERFILE).unwrap();
            Some(f)
        }
        DockerfileAt::Outside => {
            let f = dir.join("elsewhere/Dockerfile");
            parent(&f);
            fs::write(&f, DOCKERFILE).unwrap();
            Some(f)
        }
    };
    (ctx, file)
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `DOCKER_BUILDKIT=0 docker build` of the directory `context`; the image's id, or what Docker
/// said when it refused.
fn docker_build(context: &str, file: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "--no-cache"]);
    if let Some(f) = file {
        cmd.arg("-f").arg(f);
    }
    cmd.arg(context).stdin(Stdio::null());
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The `/ctx` tree of `image`, read through `docker export` of a container made from it.
fn image_tree(image: &str) -> BTreeMap<String, Entry> {
    let name = unique("diff");
    run_ok(Command::new("docker").args(["create", "--name", &name, image, "/none"]));
    let out = Command::new("docker")
        .args(["export", &name])
        .output()
        .unwrap();
    run_ok(Command::new("docker").args(["rm", &name]));
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
    assert!(
        out.status.success(),
        "docker export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tree = BTreeMap::new();
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path_bytes()).to_string();
        let Some(rel) = path.strip_prefix("ctx/") else {
            continue;
        };
        let rel = rel.trim_end_matches('/').to_string();
        if rel.is_empty() {
            continue;
        }
        let h = e.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular => 'f',
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Fifo => 'p',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            _ => '?',
        };
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).to_string());
        let mode = h.mode().unwrap() & 0o7777;
        let size = h.size().unwrap();
        let mtime = (kind != 'd').then(|| mtime_of(&mut e));
        tree.insert(
            rel,
            Entry {
                kind,
                mode,
                size,
                link,
                mtime,
            },
        );
    }
    tree
}

/// An entry's modification time, from its PAX record where it has one (before 1970, or
/// beyond what the header field holds).
fn mtime_of<R: Read>(e: &mut tar::Entry<R>) -> i64 {
    if let Ok(Some(pax)) = e.pax_extensions() {
        for ext in pax.flatten() {
            if ext.key() == Ok("mtime") {
                let v = ext.value().unwrap_or("0");
                return v.split('.').next().unwrap_or("0").parse().unwrap_or(0);
            }
        }
    }
    e.header().mtime().map_or(0, |t| t as i64)
}

/// The case built by the docker CLI from the directory.
fn by_docker(ctx: &Path, file: Option<&Path>) -> Outcome {
    match docker_build(ctx.to_str().unwrap(), file) {
        Ok(image) => Outcome::Built(image_tree(&image)),
        Err(e) => Outcome::Refused(e),
    }
}

/// The case built from deckhand's archive, sent to the same engine as deckhand sends it (the
/// classic builder through the engine API: the docker CLI's stdin sniffing would misread an
/// archive whose first entry needs a PAX header).
fn by_deckhand(ctx: &Path, file: Option<&Path>) -> Outcome {
    let context = match Context::prepare(ctx, file) {
        Ok(context) => context,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let built = runtime.block_on(async {
        let docker = deckhand::image::engine::connect()
            .await
            .map_err(|e| e.message)?;
        let spec = deckhand::image::build::BuildSpec {
            tags: vec![format!("deckhand-test/diff:{}", unique("d"))],
            no_cache: true,
            ..Default::default()
        };
        let quiet = deckhand::report::Reporter::plain();
        deckhand::image::build::build(&quiet, &docker, context, &spec)
            .await
            .map(|(id, _)| id)
            .map_err(|e| e.message)
    });
    match built {
        Ok(image) => Outcome::Built(image_tree(&image)),
        Err(e) => Outcome::Refused(format!("the engine refused deckhand's archive: {e}")),
    }
}

/// Both builds of one tree, written once so both see the same files and times.
fn both(c: &Case) -> (Outcome, Outcome) {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, file) = materialize(c, dir.path());
    (
        by_docker(&ctx, file.as_deref()),
        by_deckhand(&ctx, file.as_deref()),
    )
}

/// Whether the two agree: the same tree, or both refused. `.dockerignore`'s time is left out:
/// with a Dockerfile outside the context and no ignore file, each client writes one as it
/// sends the context.
fn agree(docker: &Outcome, deckhand: &Outcome) -> bool {
    let timeless = |o: &Outcome| match o {
        Outcome::Built(tree) => {
            let mut tree = tree.clone();
            if let Some(e) = tree.get_mut(".dockerignore") {
                e.mtime = None;
            }
            Outcome::Built(tree)
        }
        refused => refused.clone(),
    };
    match (docker, deckhand) {
        (Outcome::Refused(_), Outcome::Refused(_)) => true,
        (a, b) => timeless(a) == timeless(b),
    }
}

fn differs(c: &Case) -> bool {
    let (docker, deckhand) = both(c);
    !agree(&docker, &deckhand)
}

/// The smallest case that still differs, found by dropping one node or ignore line at a time.
fn shrink(mut c: Case) -> Case {
    loop {
        let mut smaller = false;
        let mut i = 0;
        while i < c.nodes.len() {
            let mut t = c.clone();
            let gone = t.nodes.remove(i);
            // A hard link needs its file.
            t.nodes
                .retain(|n| !matches!(n, Node::HardLink { to, .. } if to == gone.path()));
            if differs(&t) {
                c = t;
                smaller = true;
            } else {
                i += 1;
            }
        }
        let lines = c.ignore.as_ref().map_or(0, Vec::len);
        let mut i = 0;
        while i < lines.min(c.ignore.as_ref().map_or(0, Vec::len)) {
            let mut t = c.clone();
            t.ignore.as_mut().unwrap().remove(i);
            if differs(&t) {
                c = t;
                smaller = true;
            } else {
                i += 1;
            }
        }
        if !smaller {
            return c;
        }
    }
}

fn show_bytes(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// The case as a person reads it: the tree, the ignore file, the Dockerfile's place.
fn describe(c: &Case, docker: &Outcome, deckhand: &Outcome) -> String {
    let mut s = format!("case {} (Dockerfile: {:?})\ntree:\n", c.name, c.dockerfile);
    for n in &c.nodes {
        let _ = match n {
            Node::File { path, mode, mtime } => {
                writeln!(s, "  {} (file {mode:o}, mtime {mtime:?})", show_bytes(path))
            }
            Node::Dir { path } => writeln!(s, "  {}/", show_bytes(path)),
            Node::Symlink { path, target } => {
                writeln!(s, "  {} -> {}", show_bytes(path), show_bytes(target))
            }
            Node::HardLink { path, to } => {
                writeln!(
                    s,
                    "  {} (hard link to {})",
                    show_bytes(path),
                    show_bytes(to)
                )
            }
            Node::Fifo { path } => writeln!(s, "  {} (fifo)", show_bytes(path)),
        };
    }
    match &c.ignore {
        None => s.push_str("no .dockerignore\n"),
        Some(lines) => {
            s.push_str(".dockerignore:\n");
            for l in lines {
                let _ = writeln!(s, "  |{}", show_bytes(l));
            }
        }
    }
    let side = |o: &Outcome| match o {
        Outcome::Refused(e) => format!("refused: {e}"),
        Outcome::Built(tree) => tree
            .iter()
            .map(|(p, e)| format!("\n    {p} {e:?}"))
            .collect(),
    };
    let _ = write!(s, "docker:{}\ndeckhand:{}\n", side(docker), side(deckhand));
    if let (Outcome::Built(a), Outcome::Built(b)) = (docker, deckhand) {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        s.push_str("differences:\n");
        for k in keys {
            if a.get(k) != b.get(k) {
                let _ = writeln!(s, "  {k}: docker {:?}, deckhand {:?}", a.get(k), b.get(k));
            }
        }
    }
    s
}

/// Runs every case, a few at a time; each mismatch is shrunk and described.
fn check_all(cases: Vec<Case>) {
    let chunks: Vec<Vec<Case>> = {
        let mut chunks = vec![Vec::new(); AT_ONCE];
        for (i, c) in cases.into_iter().enumerate() {
            chunks[i % AT_ONCE].push(c);
        }
        chunks
    };
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for c in chunk {
                        if differs(&c) {
                            let small = shrink(c);
                            let (docker, deckhand) = both(&small);
                            failed.push(describe(&small, &docker, &deckhand));
                        }
                    }
                    failed
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} case(s) differ from docker build:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn hand_written() -> Vec<Case> {
    let mut cases = vec![
        case(
            "an exception for a directory does not re-include what a later match excludes",
            &["docs/guide.md", "docs/api.txt", "README.md"],
            &["**/*.md", "!docs"],
        ),
        case(
            "an excluded directory's exception, then a pattern matching the directory again",
            &["build/keep.txt", "build/drop.txt", "src/build/x"],
            &["build", "!build/keep.txt", "**/build"],
        ),
        case(
            "a leading slash before ! is cleaned away, leaving an exception",
            &["keep", "drop", "sub/keep"],
            &["*", "/!keep"],
        ),
        case(
            "character classes and ranges",
            &["a1", "b2", "c3", "d4", "-x", "]y"],
            &["[a-b]?", "[^c]3", "[]]y", "[-]x"],
        ),
        case("escapes", &["a*b", "axb", "q?", "qq"], &["a\\*b", "q\\?"]),
        case("a malformed class is refused", &["a"], &["[a-"]),
        case("a trailing backslash", &["a\\", "b"], &["a\\"]),
        case(
            "stars never cross a slash, double stars do",
            &["a/b/c.log", "a/c.log", "c.log", "x/y/z/w.txt", "x/w.txt"],
            &["*/c.log", "x/**/w.txt"],
        ),
        case(
            "double stars at the start, middle and end",
            &["m/n/o", "m/o", "o", "p/q/r.tmp", "deep/er/file"],
            &["**/o", "**.tmp", "deep/**"],
        ),
        case(
            "comments, blank lines, spaces and dot segments",
            &["# not a comment", "a", "b/c", "d"],
            &["# a comment", "", "  a  ", "./b/../b/c", "!  d"],
        ),
        case(
            "the Dockerfile and .dockerignore are always sent, even when excluded",
            &["x", "y/z"],
            &["*", "Dockerfile", ".dockerignore"],
        ),
        case(
            "an excluded directory is reopened only by an exception inside it",
            &["vendor/a/keep.go", "vendor/b/x.go", "other/keep.go"],
            &["vendor", "other", "!vendor/a/keep.go", "!*/keep.go"],
        ),
        case(
            "a trailing slash on a pattern",
            &["out/a", "out.txt", "sub/out/b"],
            &["out/", "sub/out/"],
        ),
        case("no ignore file", &["a", "b/c"], &[]),
    ];
    cases.last_mut().unwrap().ignore = None;

    let mut nonutf8 = case("names and an ignore file that are not UTF-8", &["ok"], &[]);
    nonutf8.nodes.push(Node::File {
        path: b"caf\xe9".to_vec(),
        mode: 0o644,
        mtime: None,
    });
    nonutf8.nodes.push(Node::File {
        path: b"d\xffir/x".to_vec(),
        mode: 0o644,
        mtime: None,
    });
    nonutf8.ignore = Some(vec![b"caf\xe9".to_vec(), b"# \xff".to_vec()]);
    cases.push(nonutf8);

    let mut special = case("hard links, a fifo, symlinks and modes", &["a/one"], &[]);
    special.nodes.extend([
        Node::HardLink {
            path: b"a/two".to_vec(),
            to: b"a/one".to_vec(),
        },
        Node::HardLink {
            path: b"b/three".to_vec(),
            to: b"a/one".to_vec(),
        },
        Node::Fifo {
            path: b"pipe".to_vec(),
        },
        Node::Symlink {
            path: b"link".to_vec(),
            target: b"a/one".to_vec(),
        },
        Node::Symlink {
            path: b"dangling".to_vec(),
            target: b"../nowhere".to_vec(),
        },
        Node::File {
            path: b"run.sh".to_vec(),
            mode: 0o755,
            mtime: None,
        },
        Node::File {
            path: b"sticky".to_vec(),
            mode: 0o1600,
            mtime: None,
        },
        Node::Dir {
            path: b"empty".to_vec(),
        },
    ]);
    cases.push(special);

    let mut times = case("times before 1970 and far in the future", &["now"], &[]);
    times.nodes.extend([
        Node::File {
            path: b"old".to_vec(),
            mode: 0o644,
            mtime: Some(-315_619_200), // 1960-01-01
        },
        Node::File {
            path: b"future".to_vec(),
            mode: 0o644,
            mtime: Some(10_413_792_000), // 2300-01-01
        },
    ]);
    cases.push(times);

    let mut outside = case(
        "a Dockerfile outside the context does not reach the image",
        &["app/main.rs", "notes.txt"],
        &["notes.txt"],
    );
    outside.dockerfile = DockerfileAt::Outside;
    cases.push(outside);
    let mut outside_bare = case("outside, with no ignore file", &["app/main.rs"], &[]);
    outside_bare.dockerfile = DockerfileAt::Outside;
    outside_bare.ignore = None;
    cases.push(outside_bare);

    let mut inside = case(
        "a Dockerfile elsewhere in the context, excluded with its directory",
        &["docker/other", "src/a"],
        &["docker"],
    );
    inside.dockerfile = DockerfileAt::Inside;
    cases.push(inside);
    cases
}

/// Names that exercise the matcher: globs' metacharacters, dots, spaces, the usual suspects.
const NAMES: &[&str] = &[
    "a", "b", "ab", "b.md", "c.log", "docs", "build", "keep.txt", "src", "x y", "[k]", "*",
    ".hidden", "d.d", "é",
];

/// Pattern pieces, joined by `/`.
const PIECES: &[&str] = &[
    "a", "b", "docs", "build", "src", "*", "**", "?", "*.md", "b*", "*.log", "[a-c]", "[^a]*",
    "[!a]", "\\*", "x y", ".", "..", "d.?", ".*", "keep.txt",
];

fn random_case(rng: &mut StdRng, n: usize) -> Case {
    let mut nodes: Vec<Node> = Vec::new();
    let mut taken: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    let clash = |p: &[u8], taken: &BTreeSet<Vec<u8>>, dirs: &BTreeSet<Vec<u8>>| {
        // A path is either a directory or something else, never both.
        taken.contains(p)
            || dirs.contains(p)
            || p.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'/')
                .any(|(i, _)| taken.contains(&p[..i]))
    };
    for _ in 0..rng.random_range(1..=9) {
        let depth = rng.random_range(1..=3);
        let path = (0..depth)
            .map(|_| NAMES[rng.random_range(0..NAMES.len())])
            .collect::<Vec<_>>()
            .join("/")
            .into_bytes();
        if clash(&path, &taken, &dirs) || path == b"Dockerfile" || path == b".dockerignore" {
            continue;
        }
        for (i, _) in path.iter().enumerate().filter(|(_, &b)| b == b'/') {
            dirs.insert(path[..i].to_vec());
        }
        taken.insert(path.clone());
        let files: Vec<Vec<u8>> = nodes
            .iter()
            .filter(|n| matches!(n, Node::File { .. }))
            .map(|n| n.path().to_vec())
            .collect();
        nodes.push(match rng.random_range(0..12) {
            0 => Node::Dir { path },
            1 => Node::Symlink {
                path,
                target: NAMES[rng.random_range(0..NAMES.len())].as_bytes().to_vec(),
            },
            2 if !files.is_empty() => Node::HardLink {
                path,
                to: files[rng.random_range(0..files.len())].clone(),
            },
            _ => Node::File {
                path,
                mode: if rng.random_bool(0.2) { 0o755 } else { 0o644 },
                mtime: None,
            },
        });
    }
    let mut lines = Vec::new();
    for _ in 0..rng.random_range(1..=5) {
        let mut line = String::new();
        if rng.random_bool(0.3) {
            line.push('!');
        }
        if rng.random_bool(0.1) {
            line.push('/');
        }
        let parts = rng.random_range(1..=3);
        let pieces: Vec<&str> = (0..parts)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect();
        line.push_str(&pieces.join("/"));
        if rng.random_bool(0.1) {
            line.push('/');
        }
        if rng.random_bool(0.05) {
            line = format!("  {line} ");
        }
        lines.push(line.into_bytes());
    }
    Case {
        name: format!("random #{n}"),
        nodes,
        ignore: Some(lines),
        dockerfile: match rng.random_range(0..10) {
            0 => DockerfileAt::Outside,
            1 => DockerfileAt::Inside,
            _ => DockerfileAt::Root,
        },
    }
}

#[test]
fn hand_written_contexts_reach_the_image_as_docker_build_sends_them() {
    Bed::get();
    check_all(hand_written());
}

#[test]
fn random_contexts_reach_the_image_as_docker_build_sends_them() {
    Bed::get();
    let seed = std::env::var("DECKHAND_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let count = std::env::var("DECKHAND_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(RANDOM_CASES);
    // Printed, so a failing run can be replayed with DECKHAND_DIFF_SEED.
    eprintln!("random contexts: seed {seed}, {count} cases");
    let mut rng = StdRng::seed_from_u64(seed);
    let cases = (0..count).map(|n| random_case(&mut rng, n)).collect();
    std::panic::catch_unwind(|| check_all(cases)).unwrap_or_else(|e| {
        panic!(
            "with DECKHAND_DIFF_SEED={seed}: {}",
            e.downcast_ref::<String>().cloned().unwrap_or_default()
        )
    });
}
