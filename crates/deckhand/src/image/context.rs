//! The build context: which files go to the Docker engine, streamed as a tar archive through a
//! small bounded buffer so memory stays flat whatever the context's size.

use std::collections::hash_map::{Entry as Seen, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::ignore::{MatchInfo, PatternError, Patterns};
use super::tarentry::{self, Entry, Kind, TarWriter};
use crate::error::{Error, Result};

/// Bytes per chunk handed to the engine, and how many chunks may wait in flight: together the
/// most context data held in memory at once (here 8 × 256 KiB = 2 MiB).
const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// The ignore file at the context root, which Docker always sends.
const DOCKERIGNORE: &str = ".dockerignore";

/// A context directory checked and ready to stream.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    /// The ignore rules as the archive applies them: the Dockerfile and `.dockerignore` kept.
    patterns: Patterns,
    /// The ignore rules as written.
    rules: Patterns,
    /// Path of the Dockerfile inside the archive, `/`-separated.
    pub dockerfile: String,
    /// A Dockerfile outside the context, added to the archive under the random name in
    /// `dockerfile` (see [`outside_dockerfile_name`]).
    outside_dockerfile: Option<PathBuf>,
    /// The ignore file that was applied, if any (for the log).
    pub ignore_file: Option<PathBuf>,
    /// The Dockerfile on disk, for reading what it needs of the builder.
    pub dockerfile_file: PathBuf,
}

/// What a walk does with each entry it keeps: its path, its context-relative name's bytes, its
/// metadata.
pub type Visit<'a> = dyn FnMut(&Path, &[u8], &fs::Metadata) -> io::Result<()> + 'a;

/// What was sent, for the log and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub bytes: u64,
}

impl Context {
    /// Checks the context directory and Dockerfile and reads the ignore rules. The ignore file
    /// is `<Dockerfile>.dockerignore` beside the Dockerfile if present (as BuildKit does),
    /// else `.dockerignore` at the context root.
    pub fn prepare(root: &Path, file: Option<&Path>) -> Result<Self> {
        let meta = fs::metadata(root).map_err(|e| {
            Error::failed(format!(
                "the build context {} cannot be read: {e}. Pass --context with the directory to build.",
                root.display()
            ))
        })?;
        if !meta.is_dir() {
            return Err(Error::failed(format!(
                "the build context {} is not a directory. Pass --context with the directory to build.",
                root.display()
            )));
        }
        let dockerfile_path = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.join("Dockerfile"));
        match fs::metadata(&dockerfile_path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(Error::failed(format!(
                    "the Dockerfile {} is not a file. Pass --file with the Dockerfile to build.",
                    dockerfile_path.display()
                )))
            }
            Err(e) => {
                return Err(Error::failed(format!(
                "no Dockerfile at {} ({e}). Add one to the context, or pass --file with its path.",
                dockerfile_path.display()
            )))
            }
        }
        let root_abs = fs::canonicalize(root).map_err(|e| io_error(root, e))?;
        let file_abs =
            fs::canonicalize(&dockerfile_path).map_err(|e| io_error(&dockerfile_path, e))?;
        // The Dockerfile's exact bytes inside the context, for the ignore rules.
        let dockerfile_bytes = file_abs
            .strip_prefix(&root_abs)
            .map(|rel| rel.as_os_str().as_bytes().to_vec())
            .ok();
        let (dockerfile, outside_dockerfile) = match file_abs.strip_prefix(&root_abs) {
            Ok(rel) => (slash_path(rel), None),
            Err(_) => (random_dockerfile_name(), Some(file_abs.clone())),
        };

        // Built from the name's bytes, so a Dockerfile name that is not UTF-8 still finds it.
        let mut specific = file_abs.clone().into_os_string();
        specific.push(".dockerignore");
        let specific = PathBuf::from(specific);
        let ignore_file = [specific, root_abs.join(".dockerignore")]
            .into_iter()
            .find(|p| p.is_file());
        let mut patterns = match &ignore_file {
            Some(path) => {
                // Bytes, not text: Docker reads an ignore file that is not UTF-8 as it is.
                let text = fs::read(path).map_err(|e| io_error(path, e))?;
                Patterns::parse(&text)
                    .map_err(|e| Error::failed(describe_pattern_error(Some(path), &e)))?
            }
            None => Patterns::default(),
        };
        let rules = patterns.clone();
        patterns.keep_build_files(dockerfile_bytes.as_deref());
        Ok(Self {
            root: root_abs,
            patterns,
            rules,
            dockerfile,
            outside_dockerfile,
            ignore_file,
            dockerfile_file: file_abs,
        })
    }

    /// Starts writing the archive on a blocking thread. The stream yields it chunk by chunk;
    /// the handle tells what was sent, or why the walk failed.
    pub fn stream(
        self,
    ) -> (
        ReceiverStream<io::Result<Bytes>>,
        JoinHandle<io::Result<Stats>>,
    ) {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let handle = tokio::task::spawn_blocking(move || {
            let writer = ChannelWriter {
                tx: tx.clone(),
                buf: BytesMut::with_capacity(CHUNK),
            };
            let result = self.write_archive(writer);
            if let Err(e) = &result {
                // Make the engine's request fail rather than end as if the context were whole.
                let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            result
        });
        (ReceiverStream::new(rx), handle)
    }

    /// Writes the whole archive into `out`.
    pub fn write_archive(&self, out: impl Write) -> io::Result<Stats> {
        // As the Docker CLI does, a Dockerfile from outside is read before the walk and stamped
        // with the time the build started.
        let outside = match &self.outside_dockerfile {
            Some(path) => Some(Outside {
                name: self.dockerfile.clone(),
                text: fs::read(path).map_err(|e| annotate(path, e))?,
                mtime: rounded_seconds(SystemTime::now()),
            }),
            None => None,
        };
        let mut tar = Appender {
            writer: TarWriter::new(out),
            first_paths: HashMap::new(),
            outside,
            rewrote_ignore: false,
        };
        let mut stats = Stats::default();
        let root = &self.root;
        let mut send = |path: &Path, _: &[u8], meta: &fs::Metadata| {
            let tar_path = path.strip_prefix(root).unwrap_or(path);
            tar.append(path, tar_path, meta, &mut stats)
        };
        self.walk(
            &self.patterns,
            &self.root,
            b"",
            &MatchInfo::default(),
            &mut send,
        )?;
        tar.append_outside(&mut stats)?;
        let mut out = tar.writer.finish()?;
        out.flush()?;
        Ok(stats)
    }

    /// Visits `dir` (at `rel_dir` in the context) and what is beneath it that `patterns` keep,
    /// names sorted bytewise and a directory before its contents, as Docker walks; `parent` is
    /// what the rules said about `dir`, handed down so each pattern is tested once per level as
    /// Docker does.
    fn walk(
        &self,
        patterns: &Patterns,
        dir: &Path,
        rel_dir: &[u8],
        parent: &MatchInfo,
        keep: &mut Visit<'_>,
    ) -> io::Result<()> {
        let mut entries = fs::read_dir(dir)
            .map_err(|e| annotate(dir, e))?
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| annotate(dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let raw_name = entry.file_name();
            // `rel` is the name's exact bytes, matched as Docker matches them.
            let mut rel = rel_dir.to_vec();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(raw_name.as_bytes());
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| annotate(&path, e))?;
            let (excluded, info) = patterns
                .matches(&rel, parent)
                .map_err(|e| self.pattern_error(&e))?;
            if meta.is_dir() {
                if excluded {
                    if !patterns.can_skip_dir(&rel) {
                        self.walk(patterns, &path, &rel, &info, keep)?;
                    }
                    continue;
                }
                keep(&path, &rel, &meta)?;
                self.walk(patterns, &path, &rel, &info, keep)?;
            } else if !excluded {
                keep(&path, &rel, &meta)?;
            }
        }
        Ok(())
    }

    /// Visits what BuildKit's reading of the ignore rules keeps: as the archive's walk, except
    /// that the Dockerfile and `.dockerignore` are left out where the rules say so (BuildKit
    /// reads the Dockerfile separately). The visitor gets the path and the context-relative
    /// name's bytes.
    pub fn visit_for_buildkit(&self, keep: &mut Visit<'_>) -> io::Result<()> {
        self.walk(&self.rules, &self.root, b"", &MatchInfo::default(), keep)
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Context {
    /// A pattern that failed while the walk tested it, as an error that ends the archive.
    fn pattern_error(&self, e: &PatternError) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            describe_pattern_error(self.ignore_file.as_deref(), e),
        )
    }
}

/// What is wrong with a pattern, where, and what to do.
fn describe_pattern_error(file: Option<&Path>, e: &PatternError) -> String {
    let file = file.map_or_else(|| ".dockerignore".to_string(), |p| p.display().to_string());
    if e.pattern.is_empty() {
        return format!("{file}:{}: {}.", e.line, e.reason);
    }
    format!(
        "{file}:{}: the pattern {:?} is invalid: {}. Fix or remove that line.",
        e.line, e.pattern, e.reason
    )
}

/// A Dockerfile from outside the context, added as the Docker CLI adds it.
struct Outside {
    name: String,
    text: Vec<u8>,
    mtime: i64,
}

/// Turns the files of the walk into tar entries the way `docker build` does.
struct Appender<W: Write> {
    writer: TarWriter<W>,
    /// First archive path of each file sent that has other hard links, by device and inode;
    /// only such files are kept, so this stays small whatever the context's size.
    first_paths: HashMap<(u64, u64), Vec<u8>>,
    outside: Option<Outside>,
    /// Whether the root `.dockerignore` was sent, rewritten to leave out the outside Dockerfile.
    rewrote_ignore: bool,
}

impl<W: Write> Appender<W> {
    /// Sends the file at `path` as `rel` (relative to the context root).
    fn append(
        &mut self,
        path: &Path,
        rel: &Path,
        meta: &fs::Metadata,
        stats: &mut Stats,
    ) -> io::Result<()> {
        let link = if meta.file_type().is_symlink() {
            let target = fs::read_link(path).map_err(|e| annotate(path, e))?;
            target.into_os_string().into_encoded_bytes()
        } else {
            Vec::new()
        };
        let name = rel.as_os_str().as_bytes();
        let Some(mut entry) = tarentry::entry_for(
            name,
            meta.mode(),
            meta.rdev(),
            meta.mtime(),
            meta.len(),
            link,
        ) else {
            tracing::warn!(
                "{} is a socket and is not sent, as with docker build",
                path.display()
            );
            return Ok(());
        };
        if entry.kind != Kind::Directory && meta.nlink() > 1 {
            match self.first_paths.entry((meta.dev(), meta.ino())) {
                Seen::Occupied(first) => {
                    entry.kind = Kind::HardLink;
                    entry.link = first.get().clone();
                    entry.size = 0;
                }
                Seen::Vacant(slot) => {
                    slot.insert(entry.name.clone());
                }
            }
        }
        let sent = if self.outside.is_some() && entry.name == DOCKERIGNORE.as_bytes() {
            self.append_rewritten_ignore(path, &mut entry)?
        } else if entry.kind == Kind::Regular {
            let file = File::open(path).map_err(|e| annotate(path, e))?;
            let exact = ExactLength {
                inner: file.take(entry.size),
                left: entry.size,
            };
            self.writer
                .append(&entry, exact)
                .map_err(|e| annotate(path, e))?
        } else {
            self.writer.append(&entry, io::empty())?
        };
        if sent && entry.kind != Kind::Directory {
            stats.files += 1;
            stats.bytes += entry.size;
        }
        Ok(())
    }

    /// Sends the root `.dockerignore` with the outside Dockerfile's name added, so the engine
    /// removes that file from the context before `COPY` sees it, as the Docker CLI arranges.
    fn append_rewritten_ignore(&mut self, path: &Path, entry: &mut Entry) -> io::Result<bool> {
        let Some(outside) = &self.outside else {
            return Ok(false);
        };
        if entry.kind != Kind::Regular {
            return Err(io::Error::other(format!(
                "{} is not a regular file, so the name of a Dockerfile outside the context \
                 cannot be added to it (the Docker CLI fails on it too); make it a plain file",
                path.display()
            )));
        }
        let mut text = Vec::new();
        ExactLength {
            inner: File::open(path)
                .map_err(|e| annotate(path, e))?
                .take(entry.size),
            left: entry.size,
        }
        .read_to_end(&mut text)
        .map_err(|e| annotate(path, e))?;
        text.extend_from_slice(&ignore_addition(&outside.name));
        entry.size = text.len() as u64;
        self.rewrote_ignore = true;
        self.writer.append(entry, text.as_slice())
    }

    /// Adds the outside Dockerfile under its random name and, if the context had no
    /// `.dockerignore`, one that names it and itself.
    fn append_outside(&mut self, stats: &mut Stats) -> io::Result<()> {
        let Some(outside) = self.outside.take() else {
            return Ok(());
        };
        let mut added = vec![(outside.name.clone(), outside.text)];
        if !self.rewrote_ignore {
            let mut text = DOCKERIGNORE.as_bytes().to_vec();
            text.extend_from_slice(&ignore_addition(&outside.name));
            added.push((DOCKERIGNORE.to_string(), text));
        }
        for (name, text) in added {
            let entry = Entry {
                name: name.into_bytes(),
                kind: Kind::Regular,
                link: Vec::new(),
                mode: 0o600,
                size: text.len() as u64,
                mtime: outside.mtime,
                dev_major: 0,
                dev_minor: 0,
            };
            self.writer.append(&entry, text.as_slice())?;
            stats.files += 1;
            stats.bytes += entry.size;
        }
        Ok(())
    }
}

/// What the Docker CLI appends to `.dockerignore` for a Dockerfile from outside the context.
fn ignore_addition(dockerfile: &str) -> Vec<u8> {
    format!("\n{dockerfile}\n").into_bytes()
}

/// A fresh name for a Dockerfile from outside the context: `.dockerfile.` and 20 hex digits,
/// as the Docker CLI names it.
fn random_dockerfile_name() -> String {
    loop {
        if let Some(name) = outside_dockerfile_name(rand::random()) {
            return name;
        }
    }
}

/// The name built from 32 random bytes, or `None` where Docker's ID generator would draw again
/// (its first 12 hex digits are all decimal).
fn outside_dockerfile_name(random: [u8; 32]) -> Option<String> {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    if hex[..12].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(".dockerfile.{}", &hex[..20]))
}

/// Seconds since the epoch, rounded to the nearest as Go's tar writer rounds a header's time.
fn rounded_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64 + i64::from(d.subsec_nanos() >= 500_000_000),
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 500_000_000)
        }
    }
}

/// Reads exactly the length the header promised: a file that shrinks while it is read is an
/// error (a short entry would shift every entry after it); one that grows is cut at `left`.
struct ExactLength<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactLength<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file shrank by {} bytes while it was being sent",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn slash_path(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn annotate(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn io_error(path: &Path, e: io::Error) -> Error {
    Error::failed(format!("cannot read {}: {e}", path.display()))
}

/// Feeds archive bytes into the bounded channel; blocks when the engine reads slower than
/// the disk, which is what keeps memory flat.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: BytesMut,
}

impl ChannelWriter {
    fn send_buffered(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the Docker engine stopped reading the build context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buffered()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffered()
    }
}

#[cfg(test)]
mod ignore_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A fifo with mode 640: the crate forbids `unsafe` and std has no mkfifo, so the mkfifo
    /// tool makes it.
    fn mkfifo(path: &Path) {
        let made = std::process::Command::new("mkfifo")
            .args(["-m", "640"])
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
    }

    /// What the test reads back from one archive member.
    #[derive(Debug)]
    struct Member {
        path: String,
        kind: tar::EntryType,
        link: Option<String>,
        mode: u32,
        uid: u64,
        mtime: i64,
        pax_keys: Vec<String>,
        data: Vec<u8>,
    }

    fn members(bytes: &[u8]) -> Vec<Member> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut pax_keys = Vec::new();
            let mut pax_mtime = None;
            if let Some(exts) = entry.pax_extensions().unwrap() {
                for ext in exts {
                    let ext = ext.unwrap();
                    let key = ext.key().unwrap().to_string();
                    if key == "mtime" {
                        pax_mtime = Some(ext.value().unwrap().parse().unwrap());
                    }
                    pax_keys.push(key);
                }
            }
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push(Member {
                path: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
                kind: header.entry_type(),
                link: entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                mtime: pax_mtime.unwrap_or(header.mtime().unwrap() as i64),
                pax_keys,
                data,
            });
        }
        out
    }

    fn member<'a>(all: &'a [Member], path: &str) -> &'a Member {
        all.iter()
            .find(|m| m.path == path)
            .unwrap_or_else(|| panic!("{path} not in {all:#?}"))
    }

    fn set_mtime(path: &Path, seconds: i64) {
        let t = if seconds < 0 {
            UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
        } else {
            UNIX_EPOCH + Duration::from_secs(seconds as u64)
        };
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    fn archive(root: &Path, file: Option<&Path>) -> (Context, Vec<u8>, Stats) {
        let context = Context::prepare(root, file).unwrap();
        let mut bytes = Vec::new();
        let stats = context.write_archive(&mut bytes).unwrap();
        (context, bytes, stats)
    }

    /// 1960-01-01 and 2300-01-01, both outside what a ustar header holds.
    const Y1960: i64 = -315_619_200;
    const Y2300: i64 = 10_413_792_000;

    #[test]
    fn every_kind_of_file_is_sent_as_docker_sends_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("a.txt"), "shared").unwrap();
        fs::hard_link(root.join("a.txt"), root.join("d/b.txt")).unwrap();
        fs::hard_link(root.join("a.txt"), root.join("z.txt")).unwrap();
        fs::write(root.join("exec.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            root.join("exec.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o4755),
        )
        .unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        mkfifo(&root.join("pipe"));
        let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        fs::write(root.join("old.txt"), "1960").unwrap();
        set_mtime(&root.join("old.txt"), Y1960);
        fs::write(root.join("future.txt"), "2300").unwrap();
        set_mtime(&root.join("future.txt"), Y2300);

        let (_, bytes, stats) = archive(root, None);
        let all = members(&bytes);
        let paths: Vec<&str> = all.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Dockerfile",
                "a.txt",
                "d/",
                "d/b.txt",
                "exec.sh",
                "future.txt",
                "link",
                "old.txt",
                "pipe",
                "z.txt"
            ],
            "in name order, the socket left out"
        );
        for m in &all {
            assert_eq!(m.uid, 0, "{}", m.path);
        }
        let first = member(&all, "a.txt");
        assert_eq!(
            (first.kind, first.data.as_slice()),
            (tar::EntryType::Regular, &b"shared"[..])
        );
        for later in ["d/b.txt", "z.txt"] {
            let m = member(&all, later);
            assert_eq!(m.kind, tar::EntryType::Link, "{later}");
            assert_eq!(m.link.as_deref(), Some("a.txt"), "{later}");
            assert!(m.data.is_empty(), "{later}");
        }
        let link = member(&all, "link");
        assert_eq!(
            (link.kind, link.link.as_deref()),
            (tar::EntryType::Symlink, Some("a.txt"))
        );
        let pipe = member(&all, "pipe");
        assert_eq!((pipe.kind, pipe.mode), (tar::EntryType::Fifo, 0o640));
        assert_eq!(member(&all, "d/").kind, tar::EntryType::Directory);
        // Permission bits and setuid, without the file type bits.
        assert_eq!(member(&all, "exec.sh").mode, 0o4755);
        assert_eq!(member(&all, "d/").mode & 0o170000, 0);
        for (path, mtime) in [("old.txt", Y1960), ("future.txt", Y2300)] {
            let m = member(&all, path);
            assert_eq!(
                (m.mtime, m.pax_keys.as_slice()),
                (mtime, &["mtime".to_string()][..])
            );
        }
        assert!(member(&all, "a.txt").pax_keys.is_empty());
        // Regular files and the fifo and links count; the directory does not.
        assert_eq!(stats.files, 9);
        assert_eq!(stats.bytes, 13 + 6 + 10 + 4 + 4);
    }

    /// Sets a path's mtime without following a symlink, by the `touch` tool (std cannot set
    /// a symlink's or a fifo's time without opening it).
    fn touch(path: &Path, seconds: i64) {
        let done = std::process::Command::new("touch")
            .arg("-h")
            .arg("-d")
            .arg(format!("@{seconds}"))
            .arg(path)
            .status()
            .unwrap();
        assert!(done.success(), "touch {}", path.display());
    }

    /// A context with one of each thing `docker build` treats specially, every mode and time
    /// fixed, so that its archive can be compared byte for byte with the Docker CLI's.
    fn docker_cli_tree(root: &Path) {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let long_dir = "l".repeat(120);
        let long_file = format!("{long_dir}/{}.txt", "n".repeat(60));
        fs::create_dir_all(root.join("d")).unwrap();
        fs::create_dir_all(root.join(&long_dir)).unwrap();
        let files = [
            ("Dockerfile", "FROM scratch\nCOPY . /\n", 0o644),
            ("a.txt", "shared\n", 0o644),
            ("exec.sh", "#!/bin/sh\n", 0o4755),
            ("old.txt", "1960\n", 0o600),
            ("future.txt", "2300\n", 0o644),
            ("caf\u{e9}.txt", "caf\n", 0o644),
            (long_file.as_str(), "long\n", 0o644),
        ];
        for (name, text, mode) in files {
            fs::write(root.join(name), text).unwrap();
            fs::set_permissions(root.join(name), fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::hard_link(root.join("a.txt"), root.join("d/b.txt")).unwrap();
        fs::hard_link(root.join("a.txt"), root.join("z.txt")).unwrap();
        symlink("a.txt", root.join("link")).unwrap();
        symlink("t".repeat(150), root.join("longlink")).unwrap();
        mkfifo(&root.join("pipe"));
        drop(std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap());
        fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::set_permissions(root.join(&long_dir), fs::Permissions::from_mode(0o755)).unwrap();
        let times = [
            ("Dockerfile", 1_600_000_000),
            ("a.txt", 981_173_106),
            ("exec.sh", 1_600_000_001),
            ("old.txt", Y1960),
            ("future.txt", Y2300),
            ("caf\u{e9}.txt", 1_600_000_002),
            (long_file.as_str(), 1_600_000_003),
            ("link", 1_600_000_004),
            ("longlink", 1_600_000_005),
            ("pipe", 1_600_000_006),
            ("sock", 1_600_000_007),
            ("d", 1_600_000_008),
            (long_dir.as_str(), 1_600_000_009),
        ];
        for (name, seconds) in times {
            touch(&root.join(name), seconds);
        }
    }

    /// What `DOCKER_BUILDKIT=0 docker build` (CLI 28.2.2) sent to the engine for
    /// [`docker_cli_tree`], recorded from the request body.
    const DOCKER_CLI_ARCHIVE: &[u8] = include_bytes!("testdata/docker-cli-context.tar");

    #[test]
    fn the_archive_is_the_docker_clis_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        docker_cli_tree(dir.path());
        let (_, bytes, _) = archive(dir.path(), None);
        if bytes != DOCKER_CLI_ARCHIVE {
            let ours: Vec<String> = members(&bytes).iter().map(|m| format!("{m:?}")).collect();
            let theirs: Vec<String> = members(DOCKER_CLI_ARCHIVE)
                .iter()
                .map(|m| format!("{m:?}"))
                .collect();
            assert_eq!(ours, theirs, "the entries differ");
            let at = bytes
                .iter()
                .zip(DOCKER_CLI_ARCHIVE)
                .position(|(a, b)| a != b);
            panic!("same entries, different bytes from offset {at:?}");
        }
    }

    #[test]
    fn a_hard_link_whose_first_path_is_ignored_is_sent_whole() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(root.join(".dockerignore"), "a.txt\n").unwrap();
        fs::write(root.join("a.txt"), "shared").unwrap();
        fs::hard_link(root.join("a.txt"), root.join("b.txt")).unwrap();
        let (_, bytes, _) = archive(root, None);
        let all = members(&bytes);
        let b = member(&all, "b.txt");
        assert_eq!(
            (b.kind, b.data.as_slice()),
            (tar::EntryType::Regular, &b"shared"[..])
        );
        assert!(all.iter().all(|m| m.path != "a.txt"));
    }

    #[test]
    fn an_outside_dockerfile_gets_a_random_name_the_ignore_file_lists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctx");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("app.txt"), "hi").unwrap();
        let dockerfile = dir.path().join("Dockerfile");
        fs::write(&dockerfile, "FROM scratch\nCOPY . /app\n").unwrap();

        // No .dockerignore: one is written that lists itself and the Dockerfile.
        let before = SystemTime::now();
        let (context, bytes, stats) = archive(&root, Some(&dockerfile));
        let name = context.dockerfile.clone();
        assert!(name.starts_with(".dockerfile."), "{name}");
        assert_eq!(name.len(), ".dockerfile.".len() + 20);
        assert!(name[12..].bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        let all = members(&bytes);
        let paths: Vec<&str> = all.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["app.txt", name.as_str(), ".dockerignore"]);
        let df = member(&all, &name);
        assert_eq!(df.data, b"FROM scratch\nCOPY . /app\n");
        assert_eq!(df.mode, 0o600);
        let now = rounded_seconds(before);
        assert!((now..=now + 5).contains(&df.mtime), "{} {now}", df.mtime);
        let ignore = member(&all, ".dockerignore");
        assert_eq!(ignore.data, format!(".dockerignore\n{name}\n").as_bytes());
        assert_eq!(ignore.mode, 0o600);
        assert_eq!(stats.files, 3);

        // A .dockerignore that ignores itself is still sent, in its place, with the name
        // appended; a new name each time.
        fs::write(root.join(".dockerignore"), "*.log\n.dockerignore").unwrap();
        fs::set_permissions(
            root.join(".dockerignore"),
            std::os::unix::fs::PermissionsExt::from_mode(0o640),
        )
        .unwrap();
        fs::write(root.join("x.log"), "").unwrap();
        let (again, bytes, _) = archive(&root, Some(&dockerfile));
        let other = again.dockerfile.clone();
        assert_ne!(other, name);
        let all = members(&bytes);
        let paths: Vec<&str> = all.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, [".dockerignore", "app.txt", other.as_str()]);
        let ignore = member(&all, ".dockerignore");
        assert_eq!(
            ignore.data,
            format!("*.log\n.dockerignore\n{other}\n").as_bytes()
        );
        assert_eq!(ignore.mode, 0o640, "the file's own header is kept");
    }

    #[test]
    fn outside_dockerfile_names_are_docker_ids_cut_to_20() {
        let mut bytes = [0u8; 32];
        bytes[..10].copy_from_slice(&[0xab, 0x01, 0x23, 0x45, 0x67, 0x89, 0xcd, 0xef, 0x00, 0xff]);
        for (random, want) in [
            (bytes, Some(".dockerfile.ab0123456789cdef00ff")),
            // The first 12 hex digits all decimal: Docker draws again.
            ([0x12; 32], None),
            ([0x1a; 32], Some(".dockerfile.1a1a1a1a1a1a1a1a1a1a")),
        ] {
            assert_eq!(outside_dockerfile_name(random).as_deref(), want);
        }
    }

    #[test]
    fn header_times_round_to_the_nearest_second() {
        for (nanos, want) in [
            (1_000_000_000i128, 1),
            (1_499_999_999, 1),
            (1_500_000_000, 2),
            (-1_400_000_000, -1),
            (-1_600_000_000, -2),
        ] {
            let t = if nanos < 0 {
                UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs() as u64)
            } else {
                UNIX_EPOCH + Duration::from_nanos(nanos as u64)
            };
            assert_eq!(rounded_seconds(t), want, "{nanos}");
        }
    }
}
