//! The sandbox's image registry: the OCI distribution API that `docker push` and pulls use,
//! behind the ECR login, with blobs on disk and manifests in the ECR state — so DescribeImages
//! shows exactly what was pushed.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::ecr::{self, Image};
use super::Shared;

/// Largest manifest accepted.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// Content-addressed blob files and upload sessions under one directory.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(Self { root })
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| self.root.join("blobs").join(hex))
    }

    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).is_some_and(|p| p.is_file())
    }

    fn upload(&self, id: &str) -> Option<PathBuf> {
        (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| self.root.join("uploads").join(id))
    }

    /// Forgets every blob (reset).
    pub fn clear(&self) {
        for dir in ["blobs", "uploads"] {
            let _ = std::fs::remove_dir_all(self.root.join(dir));
            let _ = std::fs::create_dir_all(self.root.join(dir));
        }
    }
}

/// What a `/v2/…` path asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Base,
    Tags { name: String },
    Manifest { name: String, reference: String },
    StartUpload { name: String },
    Upload { name: String, id: String },
    Blob { name: String, digest: String },
    Unknown,
}

/// Parses a registry path (pure).
pub fn route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::Unknown
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags { name: name.into() };
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        return Route::Manifest {
            name: name.into(),
            reference: reference.into(),
        };
    }
    if let Some((name, id)) = rest.split_once("/blobs/uploads") {
        let id = id.trim_start_matches('/');
        return if id.is_empty() {
            Route::StartUpload { name: name.into() }
        } else {
            Route::Upload {
                name: name.into(),
                id: id.into(),
            }
        };
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        return Route::Blob {
            name: name.into(),
            digest: digest.into(),
        };
    }
    Route::Unknown
}

type Resp = Response<Full<Bytes>>;

fn errors(status: StatusCode, code: &str, message: &str) -> Resp {
    let body = json!({"errors": [{"code": code, "message": message}]}).to_string();
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("docker-distribution-api-version", "registry/2.0");
    if status == StatusCode::UNAUTHORIZED {
        r = r.header("www-authenticate", "Basic realm=\"deckhand-sandbox\"");
    }
    r.body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

fn name_unknown(shared: &Shared, name: &str) -> Resp {
    errors(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        &format!(
            "The repository with name '{name}' does not exist in the registry with id '{}'",
            shared.place.account
        ),
    )
}

fn empty(status: StatusCode, headers: &[(&str, String)]) -> Resp {
    let mut r = Response::builder()
        .status(status)
        .header("docker-distribution-api-version", "registry/2.0")
        .header("content-length", "0");
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(Full::new(Bytes::new()))
        .expect("static response parts")
}

fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            v.replace("%3A", ":")
                .replace("%3a", ":")
                .replace("%2F", "/")
                .replace("%2f", "/")
        })
    })
}

/// True if the request carries the sandbox's ECR login.
fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let want = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", shared.password));
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .is_some_and(|got| got.trim() == want)
}

/// Answers one registry request.
pub async fn serve(shared: &Shared, req: Request<Incoming>) -> Resp {
    if !authorized(shared, &req) {
        return errors(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required: log in with the token from ECR GetAuthorizationToken",
        );
    }
    let route = route(req.uri().path());
    let name = match &route {
        Route::Base => return empty(StatusCode::OK, &[]),
        Route::Unknown => {
            return errors(
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                "unknown registry path",
            )
        }
        Route::Tags { name }
        | Route::Manifest { name, .. }
        | Route::StartUpload { name }
        | Route::Upload { name, .. }
        | Route::Blob { name, .. } => name.clone(),
    };
    if !shared
        .state
        .lock()
        .await
        .ecr
        .repositories
        .contains_key(&name)
    {
        return errors(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            &format!(
                "The repository with name '{name}' does not exist in the registry with id '{}'",
                shared.place.account
            ),
        );
    }
    let method = req.method().clone();
    match (route, method) {
        (Route::Tags { name }, Method::GET) => {
            let state = shared.state.lock().await;
            let Some(repo) = state.ecr.repositories.get(&name) else {
                return name_unknown(shared, &name);
            };
            let tags: Vec<&String> = repo.tags.keys().collect();
            let body = json!({"name": name, "tags": tags}).to_string();
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .expect("static response parts")
        }
        (Route::Manifest { name, reference }, m) if m == Method::GET || m == Method::HEAD => {
            get_manifest(shared, &name, &reference, m == Method::HEAD).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            put_manifest(shared, &name, &reference, req).await
        }
        (Route::Blob { digest, .. }, m) if m == Method::GET || m == Method::HEAD => {
            get_blob(shared, &digest, m == Method::HEAD).await
        }
        (Route::StartUpload { name }, Method::POST) => start_upload(shared, &name, req).await,
        (Route::Upload { name, id }, Method::PATCH) => patch_upload(shared, &name, &id, req).await,
        (Route::Upload { name, id }, Method::PUT) => finish_upload(shared, &name, &id, req).await,
        (Route::Upload { id, .. }, Method::DELETE) => {
            if let Some(p) = shared.blobs.upload(&id) {
                let _ = tokio::fs::remove_file(p).await;
            }
            empty(StatusCode::NO_CONTENT, &[])
        }
        _ => errors(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "method not allowed here",
        ),
    }
}

async fn get_manifest(shared: &Shared, name: &str, reference: &str, head: bool) -> Resp {
    let state = shared.state.lock().await;
    let Some(repo) = state.ecr.repositories.get(name) else {
        return name_unknown(shared, name);
    };
    let digest = if reference.starts_with("sha256:") {
        Some(reference.to_string())
    } else {
        repo.tags.get(reference).cloned()
    };
    let Some(image) = digest.and_then(|d| repo.images.get(&d)) else {
        return errors(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            &format!("manifest {reference} not found in {name}"),
        );
    };
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(image.manifest.clone())
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", &image.media_type)
        .header("docker-content-digest", &image.digest)
        .header("content-length", image.manifest.len())
        .header("docker-distribution-api-version", "registry/2.0")
        .body(Full::new(body))
        .expect("static response parts")
}

async fn put_manifest(
    shared: &Shared,
    name: &str,
    reference: &str,
    req: Request<Incoming>,
) -> Resp {
    let media_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/vnd.docker.distribution.manifest.v2+json")
        .to_string();
    let Ok(body) = Limited::new(req.into_body(), MAX_MANIFEST)
        .collect()
        .await
        .map(|b| b.to_bytes())
    else {
        return errors(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "the manifest could not be read",
        );
    };
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "the manifest is not JSON",
        );
    };
    if let Some(missing) = ecr::referenced_blobs(&parsed)
        .into_iter()
        .find(|d| !shared.blobs.has(d))
    {
        return errors(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            &format!("blob {missing} is not in the registry"),
        );
    }
    let digest = ecr::digest_of(&body);
    let tag = if reference.starts_with("sha256:") {
        if reference != digest {
            return errors(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "the manifest does not match the digest it was put under",
            );
        }
        None
    } else {
        Some(reference)
    };
    let image = Image {
        digest: digest.clone(),
        media_type,
        manifest: String::from_utf8_lossy(&body).into_owned(),
        size: ecr::manifest_size(&parsed),
        pushed_at: super::now(),
    };
    let mut state = shared.state.lock().await;
    let Some(repo) = state.ecr.repositories.get_mut(name) else {
        return name_unknown(shared, name);
    };
    match repo.put(image, tag) {
        Ok(()) => {}
        Err(e) if e.kind == "ImageAlreadyExistsException" => {}
        Err(e) => return errors(StatusCode::BAD_REQUEST, "TAG_INVALID", &e.message),
    }
    empty(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{name}/manifests/{digest}")),
            ("docker-content-digest", digest),
        ],
    )
}

async fn get_blob(shared: &Shared, digest: &str, head: bool) -> Resp {
    let Some(path) = shared.blobs.path(digest).filter(|p| p.is_file()) else {
        return errors(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            &format!("blob {digest} not found"),
        );
    };
    let len = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let body = if head {
        Bytes::new()
    } else {
        match tokio::fs::read(&path).await {
            Ok(b) => Bytes::from(b),
            Err(_) => return errors(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unreadable"),
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/octet-stream")
        .header("content-length", len)
        .header("docker-content-digest", digest)
        .header("docker-distribution-api-version", "registry/2.0")
        .body(Full::new(body))
        .expect("static response parts")
}

async fn start_upload(shared: &Shared, name: &str, req: Request<Incoming>) -> Resp {
    // Cross-repository mount: the store is shared, so a known blob is already there.
    if let Some(digest) = query_param(&req, "mount") {
        if shared.blobs.has(&digest) {
            return empty(
                StatusCode::CREATED,
                &[
                    ("location", format!("/v2/{name}/blobs/{digest}")),
                    ("docker-content-digest", digest),
                ],
            );
        }
    }
    let monolithic = query_param(&req, "digest");
    let id = super::random_hex(32);
    let path = shared.blobs.upload(&id).expect("generated ids are valid");
    if let Err(e) = append_body(&path, req.into_body()).await {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            "BLOB_UPLOAD_INVALID",
            &e.to_string(),
        );
    }
    if let Some(digest) = monolithic {
        return commit(shared, name, &path, &digest).await;
    }
    let size = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    accepted(name, &id, size)
}

fn accepted(name: &str, id: &str, size: u64) -> Resp {
    empty(
        StatusCode::ACCEPTED,
        &[
            ("location", format!("/v2/{name}/blobs/uploads/{id}")),
            ("docker-upload-uuid", id.to_string()),
            ("range", format!("0-{}", size.saturating_sub(1))),
        ],
    )
}

async fn patch_upload(shared: &Shared, name: &str, id: &str, req: Request<Incoming>) -> Resp {
    let Some(path) = shared.blobs.upload(id).filter(|p| p.is_file()) else {
        return errors(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "unknown upload",
        );
    };
    if let Err(e) = append_body(&path, req.into_body()).await {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            "BLOB_UPLOAD_INVALID",
            &e.to_string(),
        );
    }
    let size = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    accepted(name, id, size)
}

async fn finish_upload(shared: &Shared, name: &str, id: &str, req: Request<Incoming>) -> Resp {
    let Some(path) = shared.blobs.upload(id).filter(|p| p.is_file()) else {
        return errors(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "unknown upload",
        );
    };
    let Some(digest) = query_param(&req, "digest") else {
        return errors(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "a digest is required to finish an upload",
        );
    };
    if let Err(e) = append_body(&path, req.into_body()).await {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            "BLOB_UPLOAD_INVALID",
            &e.to_string(),
        );
    }
    commit(shared, name, &path, &digest).await
}

/// Checks an upload's digest and moves it into the store.
async fn commit(shared: &Shared, name: &str, upload: &Path, digest: &str) -> Resp {
    let Some(target) = shared.blobs.path(digest) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "only sha256 digests are supported",
        );
    };
    let file = upload.to_path_buf();
    let actual = tokio::task::spawn_blocking(move || hash_file(&file)).await;
    match actual {
        Ok(Ok(actual)) if actual == digest => {}
        Ok(Ok(actual)) => {
            let _ = tokio::fs::remove_file(upload).await;
            return errors(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                &format!("the upload's digest is {actual}, not {digest}"),
            );
        }
        _ => {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                "BLOB_UPLOAD_INVALID",
                "the upload could not be read",
            )
        }
    }
    if let Err(e) = tokio::fs::rename(upload, &target).await {
        return errors(
            StatusCode::INTERNAL_SERVER_ERROR,
            "BLOB_UPLOAD_INVALID",
            &e.to_string(),
        );
    }
    empty(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{name}/blobs/{digest}")),
            ("docker-content-digest", digest.to_string()),
        ],
    )
}

/// Streams a request body onto the end of a file, chunk by chunk.
async fn append_body(path: &Path, mut body: Incoming) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(std::io::Error::other)?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await?;
        }
    }
    file.flush().await
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(ecr::digest_string(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_paths_route_as_the_distribution_api_says() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(
            route("/v2/team/web/tags/list"),
            Route::Tags {
                name: "team/web".into()
            }
        );
        assert_eq!(
            route("/v2/team/web/manifests/v1"),
            Route::Manifest {
                name: "team/web".into(),
                reference: "v1".into()
            }
        );
        assert_eq!(
            route("/v2/web/blobs/uploads/"),
            Route::StartUpload { name: "web".into() }
        );
        assert_eq!(
            route("/v2/web/blobs/uploads/abc"),
            Route::Upload {
                name: "web".into(),
                id: "abc".into()
            }
        );
        assert_eq!(
            route("/v2/a/b/blobs/sha256:00"),
            Route::Blob {
                name: "a/b".into(),
                digest: "sha256:00".into()
            }
        );
        assert_eq!(route("/v3/x"), Route::Unknown);
    }
}
