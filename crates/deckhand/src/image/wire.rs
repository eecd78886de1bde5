//! Plain HTTP/1.1 to the Docker engine for what bollard does not expose: the `/build` stream of
//! a BuildKit build and the `/session` upgrade that serves it its context, secrets and login.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::engine::engine_address;

/// Where the engine listens, from `DOCKER_HOST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

/// Reads a `DOCKER_HOST` value (pure): `unix:///path`, `tcp://host:port`, `http://host:port`.
pub fn parse_address(host: &str) -> Result<Address, String> {
    if let Some(path) = host.strip_prefix("unix://") {
        return Ok(Address::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    {
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() {
            return Err(format!("DOCKER_HOST={host} names no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:2375")
        };
        return Ok(Address::Tcp(authority));
    }
    Err(format!(
        "DOCKER_HOST={host} is not a unix:// or tcp:// address deckhand's BuildKit client can \
         reach"
    ))
}

/// A connection to the engine, over either kind of socket.
pub enum Io {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_flush(cx),
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The engine's address from the environment; a TLS engine (`DOCKER_TLS_VERIFY`) is one this
/// plain-HTTP client cannot reach.
pub fn address() -> Result<Address, String> {
    if std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty()) {
        return Err(
            "DOCKER_TLS_VERIFY is set, and deckhand's BuildKit client speaks plain HTTP only"
                .into(),
        );
    }
    parse_address(&engine_address())
}

async fn connect(address: &Address) -> io::Result<Io> {
    Ok(match address {
        Address::Unix(path) => Io::Unix(UnixStream::connect(path).await?),
        Address::Tcp(authority) => Io::Tcp(TcpStream::connect(authority).await?),
    })
}

/// The requests deckhand sends carry no body: the context goes over the session.
pub type Body = Empty<Bytes>;

/// No body.
pub fn empty() -> Body {
    Empty::new()
}

/// Sends one request on a new connection, kept open past the response for a protocol switch
/// (`/session`).
pub async fn send(address: &Address, request: Request<Body>) -> io::Result<Response<Incoming>> {
    let io = connect(address).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        // The connection ends with the response (or the upgraded stream); its error, if any,
        // reaches the caller through the response body.
        let _ = connection.with_upgrades().await;
    });
    sender.send_request(request).await.map_err(io::Error::other)
}

/// A request to the engine at `path_and_query`, with the Host header HTTP/1.1 wants.
pub fn request(method: &str, path_and_query: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("Host", "docker")
}

/// Splits a byte stream into the newline-separated JSON messages the engine streams.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Feeds bytes; returns every complete, non-empty line.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.partial.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let line = line.trim_ascii().to_vec();
            if !line.is_empty() {
                out.push(line);
            }
        }
        out
    }

    /// What is left when the stream ends without a final newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.partial);
        let rest = rest.trim_ascii();
        (!rest.is_empty()).then(|| rest.to_vec())
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_forms() {
        let cases = [
            (
                "unix:///var/run/docker.sock",
                Ok(Address::Unix("/var/run/docker.sock".into())),
            ),
            ("tcp://docker:2375", Ok(Address::Tcp("docker:2375".into()))),
            ("tcp://docker", Ok(Address::Tcp("docker:2375".into()))),
            (
                "http://127.0.0.1:2375/",
                Ok(Address::Tcp("127.0.0.1:2375".into())),
            ),
        ];
        for (host, want) in cases {
            assert_eq!(parse_address(host), want, "{host}");
        }
        assert!(parse_address("ssh://me@box")
            .unwrap_err()
            .contains("ssh://me@box"));
        assert!(parse_address("tcp://").is_err());
    }

    #[test]
    fn lines_split_across_chunks_and_blank_lines_go() {
        let mut lines = Lines::default();
        assert!(lines.feed(b"{\"a\":").is_empty());
        assert_eq!(
            lines.feed(b"1}\r\n\n{\"b\":2}\n{\"c\""),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert_eq!(lines.finish(), Some(b"{\"c\"".to_vec()));
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("a b/c=[\"x\"]"), "a%20b%2Fc%3D%5B%22x%22%5D");
        assert_eq!(encode("plain-1.2_x~"), "plain-1.2_x~");
    }
}
