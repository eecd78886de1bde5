//! The build context: which files go to the Docker engine, streamed as a tar archive through a
//! small bounded buffer so memory stays flat whatever the context's size.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::ignore::{MatchInfo, PatternError, Patterns};
use crate::error::{Error, Result};

/// Bytes per chunk handed to the engine, and how many chunks may wait in flight: together the
/// most context data held in memory at once (here 8 × 256 KiB = 2 MiB).
const CHUNK: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 8;

/// Name given to a Dockerfile that lives outside the context when it is added to the stream.
const OUTSIDE_DOCKERFILE: &str = ".deckhand.Dockerfile";

/// A context directory checked and ready to stream.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    patterns: Patterns,
    /// Path of the Dockerfile inside the archive, `/`-separated.
    pub dockerfile: String,
    /// A Dockerfile outside the context, added to the archive under [`OUTSIDE_DOCKERFILE`].
    outside_dockerfile: Option<PathBuf>,
    /// The ignore file that was applied, if any (for the log).
    pub ignore_file: Option<PathBuf>,
}

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
            Err(_) => (OUTSIDE_DOCKERFILE.to_string(), Some(file_abs.clone())),
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
        patterns.keep_build_files(dockerfile_bytes.as_deref());
        Ok(Self {
            root: root_abs,
            patterns,
            dockerfile,
            outside_dockerfile,
            ignore_file,
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
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        let mut stats = Stats::default();
        self.walk(&mut tar, &self.root, b"", &MatchInfo::default(), &mut stats)?;
        if let Some(path) = &self.outside_dockerfile {
            let meta = fs::metadata(path)?;
            append_file(&mut tar, path, OUTSIDE_DOCKERFILE, &meta, &mut stats)?;
        }
        let mut out = tar.into_inner()?;
        out.flush()?;
        Ok(stats)
    }

    /// Sends `dir` (at `rel_dir` in the context) and what is beneath it; `parent` is what the
    /// ignore rules said about `dir`, handed down so each pattern is tested once per level as
    /// Docker does.
    fn walk<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        dir: &Path,
        rel_dir: &[u8],
        parent: &MatchInfo,
        stats: &mut Stats,
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
            let tar_path = path.strip_prefix(&self.root).unwrap_or(&path).to_path_buf();
            let meta = fs::symlink_metadata(&path).map_err(|e| annotate(&path, e))?;
            let (excluded, info) = self
                .patterns
                .matches(&rel, parent)
                .map_err(|e| self.pattern_error(&e))?;
            if meta.is_dir() {
                if excluded {
                    if !self.patterns.can_skip_dir(&rel) {
                        self.walk(tar, &path, &rel, &info, stats)?;
                    }
                    continue;
                }
                let mut header = header_for(&meta);
                tar.append_data(&mut header, &tar_path, io::empty())?;
                self.walk(tar, &path, &rel, &info, stats)?;
            } else if excluded {
                continue;
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(|e| annotate(&path, e))?;
                let mut header = header_for(&meta);
                tar.append_link(&mut header, &tar_path, target)?;
                stats.files += 1;
            } else if meta.is_file() {
                append_file(tar, &path, &tar_path, &meta, stats)?;
            }
            // Sockets, fifos and devices are not sent, as with `docker build`.
        }
        Ok(())
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

fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    rel: impl AsRef<Path>,
    meta: &fs::Metadata,
    stats: &mut Stats,
) -> io::Result<()> {
    let file = File::open(path).map_err(|e| annotate(path, e))?;
    let mut header = header_for(meta);
    header.set_size(meta.len());
    let exact = ExactLength {
        inner: file.take(meta.len()),
        left: meta.len(),
    };
    tar.append_data(&mut header, rel, exact)
        .map_err(|e| annotate(path, e))?;
    stats.files += 1;
    stats.bytes += meta.len();
    Ok(())
}

/// A header with the file's mode and time, owned by root as `docker build` sends it.
fn header_for(meta: &fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_uid(0);
    header.set_gid(0);
    let _ = header.set_username("");
    let _ = header.set_groupname("");
    header
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
