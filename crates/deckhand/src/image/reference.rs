//! Image references (`[host[:port]/]path[:tag][@sha256:…]`) parsed once, as Docker reads them.

use std::fmt;

/// A parsed image reference: registry host, repository path, tag and digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: Option<String>,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<ImageRef, String> {
        if text.is_empty() {
            return Err("the image reference is empty".into());
        }
        if text.chars().any(char::is_whitespace) {
            return Err(format!("the image reference {text:?} contains whitespace"));
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                check_digest(digest)
                    .map_err(|e| format!("in the image reference {text:?}: {e}"))?;
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // The first component is a registry when Docker would take it for one.
        let (registry, rest) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                check_registry(first)
                    .map_err(|e| format!("in the image reference {text:?}: {e}"))?;
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((path, tag)) => {
                check_tag(tag).map_err(|e| format!("in the image reference {text:?}: {e}"))?;
                (path, Some(tag.to_string()))
            }
            None => (rest, None),
        };
        check_repository(repository)
            .map_err(|e| format!("in the image reference {text:?}: {e}"))?;
        Ok(ImageRef {
            registry,
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The registry `host[:port]`, when the reference names one.
    pub fn registry(&self) -> Option<&str> {
        self.registry.as_deref()
    }

    /// The repository path inside the registry (`team/web`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `sha256:…`, when the reference is pinned.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Registry and repository, without tag or digest (`host:5000/team/web`).
    pub fn repository_uri(&self) -> String {
        match &self.registry {
            Some(r) => format!("{r}/{}", self.repository),
            None => self.repository.clone(),
        }
    }

    /// The commit SHA of a `deckhand push` tag: 40 or 64 hex digits, optionally `-dirty`.
    pub fn sha(&self) -> Option<&str> {
        let tag = self.tag.as_deref()?;
        let tag = tag.strip_suffix("-dirty").unwrap_or(tag);
        ((tag.len() == 40 || tag.len() == 64) && tag.chars().all(|c| c.is_ascii_hexdigit()))
            .then_some(tag)
    }

    /// The same repository pinned by `digest` alone (`repo@sha256:…`), no tag.
    pub fn pinned(&self, digest: &str) -> Result<ImageRef, String> {
        check_digest(digest)?;
        Ok(ImageRef {
            tag: None,
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }

    /// The same repository with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<ImageRef, String> {
        check_tag(tag)?;
        Ok(ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository_uri())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// `sha256:` and 64 lower-case hex digits.
pub fn check_digest(digest: &str) -> Result<(), String> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!(
            "the digest {digest:?} is not sha256:<64 hex digits>"
        ));
    };
    if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "the digest {digest:?} must have 64 lower-case hex digits after sha256:"
        ));
    }
    Ok(())
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the tag after ':' is empty".into());
    }
    if tag.len() > 128 {
        return Err(format!("the tag {tag:?} is longer than 128 characters"));
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(word);
    if !first_ok || !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err(format!(
            "the tag {tag:?} may only hold letters, digits, '_', '.' and '-', and not start with '.' or '-'"
        ));
    }
    Ok(())
}

/// `host[:port]`: letters, digits, '.', '-' (or a bracketed IPv6 address), and a numeric port.
fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, rest)) => (addr, Some(rest.strip_prefix(':').unwrap_or(rest))),
            None => ("", None),
        },
        None => match registry.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        },
    };
    let v6 = registry.starts_with('[');
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || (v6 && c == ':'));
    if !host_ok {
        return Err(format!("the registry host {host:?} is not a host name"));
    }
    if let Some(p) = port {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("the registry port {p:?} is not a number"));
        }
    }
    Ok(())
}

/// Lower-case components `[a-z0-9]+` joined by `.`, `_`, `__` or dashes, separated by '/'.
fn check_repository(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("the repository name is empty".into());
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "the repository name {path:?} has upper-case letters; repository names are lower case"
        ));
    }
    for component in path.split('/') {
        if !component_ok(component) {
            return Err(format!(
                "the repository name {path:?} is invalid at {component:?}: each '/'-separated part \
                 is lower-case letters and digits, joined by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn component_ok(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = component.chars().collect();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or any number of '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep: String = bytes[start..i].iter().collect();
        if !(sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_into_their_parts() {
        let pinned = format!("127.0.0.1:5000/web@{D}");
        let both = format!("a.b/c:1@{D}");
        // (text, registry, repository, tag, digest, repository_uri)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "registry:5000/team/web:tag",
                Some("registry:5000"),
                "team/web",
                Some("tag"),
                None,
                "registry:5000/team/web",
            ),
            (
                &pinned,
                Some("127.0.0.1:5000"),
                "web",
                None,
                Some(D),
                "127.0.0.1:5000/web",
            ),
            ("web", None, "web", None, None, "web"),
            (
                "team/web:latest",
                None,
                "team/web",
                Some("latest"),
                None,
                "team/web",
            ),
            (
                "localhost/web",
                Some("localhost"),
                "web",
                None,
                None,
                "localhost/web",
            ),
            (
                "[::1]:5000/web",
                Some("[::1]:5000"),
                "web",
                None,
                None,
                "[::1]:5000/web",
            ),
            (&both, Some("a.b"), "c", Some("1"), Some(D), "a.b/c"),
            (
                "1.dkr.ecr.us-east-1.amazonaws.com/my-app__x/web.v2:v1.0-rc_1",
                Some("1.dkr.ecr.us-east-1.amazonaws.com"),
                "my-app__x/web.v2",
                Some("v1.0-rc_1"),
                None,
                "1.dkr.ecr.us-east-1.amazonaws.com/my-app__x/web.v2",
            ),
        ];
        for (text, registry, repository, tag, digest, uri) in cases {
            let r = ImageRef::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.registry(), registry, "{text}");
            assert_eq!(r.repository(), repository, "{text}");
            assert_eq!(r.tag(), tag, "{text}");
            assert_eq!(r.digest(), digest, "{text}");
            assert_eq!(r.repository_uri(), uri, "{text}");
            assert_eq!(r.to_string(), text, "{text} round-trips");
        }
    }

    #[test]
    fn invalid_references_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("garbage!!@@ not an image", "whitespace"),
            ("garbage!!", "is invalid at \"garbage!!\""),
            ("Web:1", "upper-case"),
            ("web:", "tag after ':' is empty"),
            ("web:-x", "may only hold"),
            ("web@md5:x", "not sha256"),
            ("web@sha256:abc", "64 lower-case hex"),
            ("web@", "not sha256"),
            ("host:port/web", "port \"port\" is not a number"),
            ("a//b", "invalid at \"\""),
            ("team/web-/x", "invalid at \"web-\""),
            ("a...b", "invalid at"),
        ];
        for (text, want) in cases {
            let e = ImageRef::parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
        assert!(ImageRef::parse(&format!("web:{}", "a".repeat(129))).is_err());
        assert!(ImageRef::parse(&format!("web:{}", "a".repeat(128))).is_ok());
    }

    #[test]
    fn the_sha_is_read_from_a_push_tag() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let sha_of = |text: String| ImageRef::parse(&text).unwrap().sha().map(str::to_string);
        assert_eq!(
            sha_of(format!("127.0.0.1:5000/web:{sha}")).as_deref(),
            Some(sha)
        );
        assert_eq!(
            sha_of(format!("127.0.0.1:5000/web:{sha}-dirty")).as_deref(),
            Some(sha)
        );
        let long = "a".repeat(64);
        assert_eq!(sha_of(format!("web:{long}@{D}")).as_deref(), Some(&*long));
        assert_eq!(sha_of("127.0.0.1:5000/web:latest".into()), None);
        assert_eq!(sha_of(format!("web:{}", &sha[..39])), None);
        assert_eq!(sha_of(format!("web@{D}")), None);
    }

    #[test]
    fn pinning_and_retagging_keep_the_repository() {
        let r = ImageRef::parse("127.0.0.1:5000/team/web:v1").unwrap();
        assert_eq!(
            r.pinned(D).unwrap().to_string(),
            format!("127.0.0.1:5000/team/web@{D}")
        );
        assert!(r.pinned("sha256:short").is_err());
        let p = r.pinned(D).unwrap();
        assert_eq!(
            p.with_tag("v2").unwrap().to_string(),
            "127.0.0.1:5000/team/web:v2"
        );
        assert!(r.with_tag("").is_err());
        assert_eq!("web".parse::<ImageRef>().unwrap().to_string(), "web");
    }
}
