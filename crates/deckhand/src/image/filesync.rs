//! The build context as BuildKit asks for it over the session (the FileSync protocol
//! `docker buildx build` speaks): each file's metadata in walk order under deckhand's own
//! `.dockerignore` matching, then the contents of the files the engine asks for. The Dockerfile
//! comes from its own directory, so one outside the context, or one `.dockerignore` leaves out,
//! never lands in `COPY .`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard_buildkit_proto::fsutil::types::{packet::PacketType, Packet, Stat};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSync;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::context::{Context, Stats};
use super::tarentry;

/// Bytes of a file per data packet.
const CHUNK: usize = 32 * 1024;

/// Go's `os.FileMode` bits, which the protocol's `mode` carries.
mod go_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
}

/// A Unix `st_mode` as Go's `os.FileMode` (pure).
pub fn file_mode(unix: u32) -> u32 {
    let mut mode = unix & 0o777;
    mode |= match unix & 0o170000 {
        0o040000 => go_mode::DIR,
        0o120000 => go_mode::SYMLINK,
        0o060000 => go_mode::DEVICE,
        0o020000 => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        0o010000 => go_mode::NAMED_PIPE,
        0o140000 => go_mode::SOCKET,
        _ => 0,
    };
    if unix & 0o4000 != 0 {
        mode |= go_mode::SETUID;
    }
    if unix & 0o2000 != 0 {
        mode |= go_mode::SETGID;
    }
    if unix & 0o1000 != 0 {
        mode |= go_mode::STICKY;
    }
    mode
}

/// The directories a build reads: the context, and the one holding the Dockerfile.
pub struct Dirs {
    pub context: Context,
    /// The Dockerfile's directory and its file name there.
    pub dockerfile_dir: PathBuf,
    pub dockerfile_name: String,
    /// What the context sent, for the log.
    pub stats: Mutex<Stats>,
}

impl Dirs {
    pub fn new(context: Context) -> Self {
        let file = context.dockerfile_file.clone();
        let dockerfile_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let dockerfile_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".into());
        Dirs {
            context,
            dockerfile_dir,
            dockerfile_name,
            stats: Mutex::new(Stats::default()),
        }
    }

    /// The directory the engine names `dir_name`: the Dockerfile's, or the context.
    fn root(&self, dir_name: &str) -> &Path {
        match dir_name {
            "dockerfile" => &self.dockerfile_dir,
            _ => self.context.root(),
        }
    }

    /// Where file `rel` (as sent from `dir_name`) is on disk.
    fn path_of(&self, dir_name: &str, rel: &[u8]) -> PathBuf {
        self.root(dir_name).join(std::ffi::OsStr::from_bytes(rel))
    }
}

/// Whether `rel` is asked for by `includes` (pure): named by one, or a directory above one. A
/// pattern with wildcards is not narrowed here: everything goes, and the engine picks.
pub fn included(includes: &[String], rel: &str) -> bool {
    includes.is_empty()
        || includes.iter().any(|p| {
            p.contains(['*', '?', '['])
                || p == rel
                || p.strip_prefix(rel)
                    .is_some_and(|rest| rest.starts_with('/'))
                || rel
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The regular files sent, by the id the engine asks for them with: their context-relative
/// paths in one buffer, so what is kept stays small whatever the context's size.
#[derive(Debug, Default)]
pub struct Sent {
    names: Vec<u8>,
    /// (id, end of its name in `names`), ids ascending.
    spans: Vec<(u32, u32)>,
}

impl Sent {
    fn push(&mut self, id: u32, rel: &[u8]) {
        self.names.extend_from_slice(rel);
        self.spans.push((id, self.names.len() as u32));
    }

    /// The relative path of file `id`, if it is a regular file that was sent.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        let i = self.spans.binary_search_by_key(&id, |(n, _)| *n).ok()?;
        let start = if i == 0 {
            0
        } else {
            self.spans[i - 1].1 as usize
        };
        Some(&self.names[start..self.spans[i].1 as usize])
    }
}

fn stat_of(
    rel: &str,
    path: &Path,
    meta: &fs::Metadata,
    first: &mut HashMap<(u64, u64), String>,
) -> io::Result<(Stat, bool)> {
    let mut stat = Stat {
        path: rel.to_string(),
        mode: file_mode(meta.permissions().mode()),
        uid: 0,
        gid: 0,
        size: 0,
        // Nanoseconds, wrapping past 2262 as Go's `UnixNano` (what buildx sends) does.
        mod_time: meta
            .mtime()
            .wrapping_mul(1_000_000_000)
            .wrapping_add(meta.mtime_nsec()),
        ..Default::default()
    };
    let kind = meta.file_type();
    let mut regular = false;
    if kind.is_symlink() {
        stat.linkname = fs::read_link(path)?.to_string_lossy().into_owned();
    } else if kind.is_file() {
        regular = true;
        stat.size = meta.len() as i64;
        if meta.nlink() > 1 {
            match first.entry((meta.dev(), meta.ino())) {
                std::collections::hash_map::Entry::Occupied(seen) => {
                    // The second path of a hard link: a link to the first, no data of its own.
                    stat.linkname = seen.get().clone();
                    stat.size = 0;
                    regular = false;
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(rel.to_string());
                }
            }
        }
    } else if !kind.is_dir() {
        stat.devmajor = tarentry::dev_major(meta.rdev()) as i64;
        stat.devminor = tarentry::dev_minor(meta.rdev()) as i64;
    }
    Ok((stat, regular))
}

/// Walks what the engine asked for (the context under the ignore rules, or the Dockerfile's
/// directory, only what `includes` names), handing each entry's metadata to `emit` as it
/// goes; returns the regular files by id.
fn walk(
    dirs: &Dirs,
    dir_name: &str,
    includes: &[String],
    emit: &mut dyn FnMut(Stat) -> io::Result<()>,
) -> io::Result<Sent> {
    let mut sent = Sent::default();
    let mut first = HashMap::new();
    let mut id = 0u32;
    let mut open = Parents::default();
    let mut keep = |path: &Path, rel: &[u8], meta: &fs::Metadata| -> io::Result<()> {
        let name = String::from_utf8_lossy(rel).into_owned();
        if !included(includes, &name) || meta.file_type().is_socket() {
            return Ok(());
        }
        // The engine takes nothing whose directory it has not been sent: a directory the rules
        // left out but walked into (for an exception beneath it) goes first.
        for parent in open.missing(rel) {
            let parent_path = dirs.path_of(dir_name, &parent);
            let parent_meta = fs::symlink_metadata(&parent_path)?;
            let parent_name = String::from_utf8_lossy(&parent).into_owned();
            let (stat, _) = stat_of(&parent_name, &parent_path, &parent_meta, &mut first)?;
            emit(stat)?;
            id += 1;
        }
        let (stat, regular) = stat_of(&name, path, meta, &mut first)?;
        if regular {
            sent.push(id, rel);
        }
        if meta.is_dir() {
            open.entered(rel);
        }
        emit(stat)?;
        id += 1;
        Ok(())
    };
    match dir_name {
        "context" => dirs.context.visit_for_buildkit(&mut keep)?,
        "dockerfile" => {
            let mut names: Vec<_> = fs::read_dir(&dirs.dockerfile_dir)?
                .collect::<io::Result<Vec<_>>>()?
                .into_iter()
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for name in names {
                let path = dirs.dockerfile_dir.join(&name);
                let meta = fs::symlink_metadata(&path)?;
                // Only files: the Dockerfile and its ignore file are what is read from here.
                if meta.is_file() || meta.file_type().is_symlink() {
                    keep(&path, name.as_encoded_bytes(), &meta)?;
                }
            }
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the build asked for a directory {other:?} deckhand does not send"),
            ))
        }
    }
    Ok(sent)
}

/// The directories sent that the walk is still inside, so a kept entry's missing parents are
/// known (pure).
#[derive(Debug, Default)]
pub struct Parents {
    stack: Vec<Vec<u8>>,
}

impl Parents {
    /// A directory was sent.
    pub fn entered(&mut self, dir: &[u8]) {
        self.stack.push(dir.to_vec());
    }

    /// The ancestors of `rel` not sent yet, outermost first; they count as sent from here on.
    pub fn missing(&mut self, rel: &[u8]) -> Vec<Vec<u8>> {
        let under =
            |dir: &[u8]| rel.len() > dir.len() && rel.starts_with(dir) && rel[dir.len()] == b'/';
        while self.stack.last().is_some_and(|d| !under(d)) {
            self.stack.pop();
        }
        let mut out = Vec::new();
        for (i, b) in rel.iter().enumerate() {
            if *b == b'/' {
                let dir = &rel[..i];
                if !self.stack.iter().any(|d| d == dir) {
                    out.push(dir.to_vec());
                }
            }
        }
        for dir in &out {
            self.stack.push(dir.clone());
        }
        out
    }
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Default::default()
    }
}

fn values(request: &Request<Streaming<Packet>>, key: &str) -> Vec<String> {
    let encoded = request.metadata().get(format!("{key}-encoded")).is_some();
    request
        .metadata()
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if encoded {
                percent_decode(v)
            } else {
                v.to_string()
            }
        })
        .collect()
}

/// A metadata value BuildKit percent-encoded (its `<key>-encoded` flag is set) (pure).
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The session's FileSync service over the build's directories.
pub struct Files(pub Arc<Dirs>);

#[tonic::async_trait]
impl FileSync for Files {
    type DiffCopyStream = ReceiverStream<Result<Packet, Status>>;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let dir_name = values(&request, "dir-name")
            .into_iter()
            .next()
            .unwrap_or_default();
        // What the engine names (patterns to include, paths to follow) narrows the walk; the
        // context's own exclusions are deckhand's reading of the ignore file.
        let mut includes = values(&request, "include-patterns");
        includes.extend(values(&request, "followpaths"));
        debug!("build session: {dir_name:?} asked for (includes {includes:?})");
        let dirs = self.0.clone();
        let (tx, rx) = mpsc::channel(16);
        let incoming = request.into_inner();
        tokio::spawn(async move {
            if let Err(e) = serve(dirs, &dir_name, includes, &tx, incoming).await {
                let _ = tx
                    .send(Ok(Packet {
                        data: e.to_string().into_bytes(),
                        ..packet(PacketType::PacketErr)
                    }))
                    .await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type TarStreamStream = ReceiverStream<Result<Packet, Status>>;

    async fn tar_stream(
        &self,
        _: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented("not served"))
    }
}

type Tx = mpsc::Sender<Result<Packet, Status>>;

async fn send(tx: &Tx, p: Packet) -> io::Result<()> {
    tx.send(Ok(p)).await.map_err(|_| stopped_reading())
}

/// The engine closed the stream deckhand was sending on.
fn stopped_reading() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading")
}

/// Serves one request of the engine for a directory.
async fn serve(
    dirs: Arc<Dirs>,
    dir_name: &str,
    includes: Vec<String>,
    tx: &Tx,
    mut incoming: Streaming<Packet>,
) -> io::Result<()> {
    // The engine's requests are read as they come, whatever is being sent: left unread, its
    // thousands of small frames would exhaust the connection's budget for them.
    let (requests, mut asked) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            match incoming.message().await {
                Ok(Some(p)) => {
                    if requests.send(Ok(p)).is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = requests.send(Err(io::Error::other(e)));
                    break;
                }
            }
        }
    });
    let result = answer(&dirs, dir_name, includes, tx, &mut asked).await;
    reader.abort();
    result
}

/// Sends the metadata, then each file asked for, until the engine says it is done.
async fn answer(
    dirs: &Arc<Dirs>,
    dir_name: &str,
    includes: Vec<String>,
    tx: &Tx,
    asked: &mut mpsc::UnboundedReceiver<io::Result<Packet>>,
) -> io::Result<()> {
    // The metadata goes out as the walk finds it; the walk keeps only the files' names.
    let walked = {
        let dirs = dirs.clone();
        let name = dir_name.to_string();
        let out = tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut emit = |stat: Stat| {
                out.blocking_send(Ok(Packet {
                    stat: Some(stat),
                    ..packet(PacketType::PacketStat)
                }))
                .map_err(|_| stopped_reading())
            };
            walk(&dirs, &name, &includes, &mut emit)
        })
        .await
        .map_err(io::Error::other)??
    };
    send(tx, packet(PacketType::PacketStat)).await?;
    let mut sent = Stats::default();
    while let Some(p) = asked.recv().await {
        let p = p?;
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketReq) => {
                let rel = walked.get(p.id).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("no file {} to send", p.id),
                    )
                })?;
                let path = dirs.path_of(dir_name, rel);
                let bytes = send_file(tx, p.id, &path).await?;
                sent.files += 1;
                sent.bytes += bytes;
            }
            Ok(PacketType::PacketFin) => {
                send(tx, packet(PacketType::PacketFin)).await?;
                break;
            }
            Ok(PacketType::PacketErr) => {
                return Err(io::Error::other(format!(
                    "the engine failed to receive the context: {}",
                    String::from_utf8_lossy(&p.data)
                )))
            }
            _ => {}
        }
    }
    if dir_name == "context" {
        let mut stats = dirs.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.files += sent.files;
        stats.bytes += sent.bytes;
    }
    Ok(())
}

/// Sends one file's bytes in chunks, then the empty packet that ends it; returns its size.
async fn send_file(tx: &Tx, id: u32, path: &Path) -> io::Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let mut total = 0u64;
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        total += n as u64;
        send(
            tx,
            Packet {
                id,
                data: buf,
                ..packet(PacketType::PacketData)
            },
        )
        .await?;
    }
    send(
        tx,
        Packet {
            id,
            ..packet(PacketType::PacketData)
        },
    )
    .await?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_modes_become_go_file_modes() {
        let cases = [
            (0o100644, 0o644),
            (0o104755, 0o755 | go_mode::SETUID),
            (0o040755, 0o755 | go_mode::DIR),
            (0o041777, 0o777 | go_mode::DIR | go_mode::STICKY),
            (0o120777, 0o777 | go_mode::SYMLINK),
            (0o010644, 0o644 | go_mode::NAMED_PIPE),
            (0o020620, 0o620 | go_mode::DEVICE | go_mode::CHAR_DEVICE),
            (0o060660, 0o660 | go_mode::DEVICE),
            (0o102755, 0o755 | go_mode::SETGID),
        ];
        for (unix, go) in cases {
            assert_eq!(file_mode(unix), go, "{unix:o}");
        }
    }

    #[test]
    fn a_kept_entry_inside_left_out_directories_brings_them_first() {
        let mut open = Parents::default();
        let none: Vec<Vec<u8>> = Vec::new();
        // `docs` then `!docs/api/README.md`: docs and docs/api were walked into, not sent
        assert_eq!(open.missing(b"Dockerfile"), none);
        assert_eq!(
            open.missing(b"docs/api/README.md"),
            vec![b"docs".to_vec(), b"docs/api".to_vec()]
        );
        assert_eq!(open.missing(b"docs/api/z.md"), none, "sent once");
        assert_eq!(open.missing(b"docs/b.md"), none);
        assert_eq!(open.missing(b"docs-old/x"), vec![b"docs-old".to_vec()]);
        // a directory that was sent itself needs nothing more
        open.entered(b"src");
        assert_eq!(open.missing(b"src/main.rs"), none);
        assert_eq!(open.missing(b"srcx/a"), vec![b"srcx".to_vec()]);
    }

    #[test]
    fn encoded_metadata_values_are_decoded() {
        assert_eq!(percent_decode("Docker%20file%C3%A9"), "Docker fileé");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn sent_files_are_found_by_id() {
        let mut sent = Sent::default();
        sent.push(1, b"a.txt");
        sent.push(4, b"d/b.txt");
        sent.push(9, b"z");
        assert_eq!(sent.get(1), Some(&b"a.txt"[..]));
        assert_eq!(sent.get(4), Some(&b"d/b.txt"[..]));
        assert_eq!(sent.get(9), Some(&b"z"[..]));
        assert_eq!(sent.get(0), None);
        assert_eq!(sent.get(5), None);
    }

    #[test]
    fn includes_name_files_and_the_directories_above_them() {
        let inc = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (inc(&[]), "anything", true),
            (inc(&["Dockerfile"]), "Dockerfile", true),
            (inc(&["Dockerfile"]), "Dockerfile.dockerignore", false),
            (inc(&["sub/Dockerfile"]), "sub", true),
            (inc(&["sub/Dockerfile"]), "subway", false),
            (inc(&["sub"]), "sub/x", true),
            (inc(&["*.txt"]), "a.md", true),
        ];
        for (includes, rel, want) in cases {
            assert_eq!(included(&includes, rel), want, "{includes:?} {rel}");
        }
    }
}
