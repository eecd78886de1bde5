//! `.dockerignore` semantics exactly as the Docker CLI applies them, so users get the context
//! they would get from `docker build`.
//!
//! Rules (from Docker's pattern matcher): lines starting with `#` are comments; patterns are
//! trimmed, cleaned like Go's `filepath.Clean`, and a leading `/` is dropped; `*` and `?`
//! never cross `/`; `**` matches any number of directories (even none); `!` re-includes; the
//! last matching pattern wins; a path is excluded when it or any parent directory matches.

use regex::Regex;

/// One compiled line of a `.dockerignore` file.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern text, without the leading `!`.
    text: String,
    /// True for `!pattern` (re-include).
    exception: bool,
    matcher: Matcher,
}

/// How a pattern is tested, as Docker decides it: literal patterns are compared as text (so
/// `**.pyc` is a suffix test and `a^b` a plain name), only wildcard patterns use a regex.
#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    /// `literal**`: the path starts with the literal.
    Prefix(String),
    /// `**literal`: the path ends with the literal (`**/x` also matches `x` itself).
    Suffix(String),
    Regex(Regex),
}

impl Matcher {
    fn is_match(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(text) => path == text,
            Matcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|bare| path == bare)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// The patterns of one `.dockerignore`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

/// A pattern that cannot be compiled, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

impl Patterns {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let raw = if i == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let err = |reason: &str| PatternError {
                line: i + 1,
                pattern: raw.to_string(),
                reason: reason.to_string(),
            };
            if body.is_empty() {
                return Err(err("an exception `!` needs a pattern after it"));
            }
            let mut text = clean(body);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            let matcher = compile(&text).map_err(|e| err(&e))?;
            patterns.push(Pattern {
                text,
                exception,
                matcher,
            });
        }
        Ok(Self { patterns })
    }

    /// Adds the re-includes Docker adds so the build files are always sent: `.dockerignore`
    /// itself and the Dockerfile (given relative to the context, `/`-separated).
    pub fn keep_build_files(&mut self, dockerfile: &str) {
        for keep in [".dockerignore", dockerfile] {
            if self.excludes(keep) {
                let text = clean(keep);
                // A file name that is not a valid pattern is still kept, by its exact name.
                let matcher = compile(&text).unwrap_or_else(|_| Matcher::Exact(text.clone()));
                self.patterns.push(Pattern {
                    text,
                    exception: true,
                    matcher,
                });
            }
        }
    }

    /// True if `path` (relative to the context, `/`-separated) is left out of the context,
    /// because it or one of its parent directories matches.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // An include cannot change an already excluded path, nor an exception an
            // included one.
            if p.exception != matched {
                continue;
            }
            let mut hit = p.matcher.is_match(path);
            if !hit {
                for i in 1..=parents.len() {
                    if p.matcher.is_match(&parents[..i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.exception;
            }
        }
        matched
    }

    /// True if an excluded directory can be skipped whole: no exception pattern starts inside
    /// it. This mirrors Docker, which compares the exception's literal text with the
    /// directory's path, so `!*/keep` does not reopen an excluded `dir/`.
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .any(|p| p.exception && format!("{}/", p.text).starts_with(&dir_slash))
    }

    /// True if there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Go's `filepath.Clean` on a `/`-separated path.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// What kind of test a pattern needs, tracked while it is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// Compiles a cleaned pattern the way Docker's matcher does: a regex where wildcards need one,
/// a plain text test otherwise.
fn compile(pattern: &str) -> Result<Matcher, String> {
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars().peekable();
    let mut first = true;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is treated as `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    re.push('\\');
                    re.push(next);
                    kind = Kind::Regex;
                }
                None => return Err("a pattern cannot end with `\\`".to_string()),
            },
            '[' | ']' => {
                re.push(ch);
                kind = Kind::Regex;
            }
            _ => re.push(ch),
        }
        first = false;
    }
    match kind {
        Kind::Exact => Ok(Matcher::Exact(pattern.to_string())),
        Kind::Prefix => Ok(Matcher::Prefix(pattern[..pattern.len() - 2].to_string())),
        Kind::Suffix => Ok(Matcher::Suffix(pattern[2..].to_string())),
        Kind::Regex => {
            re.push('$');
            Regex::new(&re)
                .map(Matcher::Regex)
                .map_err(|e| format!("not a valid pattern ({e})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (dockerignore text, path, excluded?)
    const CASES: &[(&str, &str, bool)] = &[
        // plain names match at the root and exclude everything beneath
        ("node_modules", "node_modules", true),
        ("node_modules", "node_modules/a/b.js", true),
        ("node_modules", "src/node_modules", false),
        // `*` does not cross directories; there is no implicit `**/` as in .gitignore
        ("*.log", "a.log", true),
        ("*.log", "logs/a.log", false),
        ("*/*.log", "logs/a.log", true),
        ("*/*.log", "a/b/c.log", false),
        // `**` matches any number of directories, including none
        ("**/*.log", "a.log", true),
        ("**/*.log", "a/b/c.log", true),
        ("a/**/z", "a/z", true),
        ("a/**/z", "a/b/c/z", true),
        ("a/**", "a/b/c", true),
        ("a/**", "b/a/c", false),
        ("**", "anything/at/all", true),
        // `?` is one character, never `/`
        ("?.txt", "a.txt", true),
        ("?.txt", "ab.txt", false),
        ("a?b", "a/b", false),
        // character classes
        ("[abc].txt", "b.txt", true),
        ("[^abc].txt", "b.txt", false),
        ("[a-c]/x", "c/x", true),
        // regex metacharacters are literal
        ("a.b", "axb", false),
        ("a+b", "a+b", true),
        ("(x)", "(x)", true),
        ("{a,b}", "a", false),
        // escapes
        ("\\*", "*", true),
        ("\\*", "x", false),
        // cleaning: leading slash, ./, trailing slash, `..`
        ("/secret", "secret", true),
        ("./secret", "secret", true),
        ("build/", "build/out.o", true),
        ("a/../b", "b", true),
        ("a//b", "a/b", true),
        // comments and blank lines
        ("# comment\n\n  tmp  ", "tmp", true),
        ("# tmp", "# tmp", false),
        // `!` re-includes; the last matching pattern wins
        ("*.md\n!README.md", "README.md", false),
        ("*.md\n!README.md", "CHANGES.md", true),
        ("!README.md\n*.md", "README.md", true),
        ("docs\n!docs/keep.txt", "docs/keep.txt", false),
        ("docs\n!docs/keep.txt", "docs/other.txt", true),
        ("**/*.tmp\n!keep/**\n", "keep/a/b.tmp", false),
        ("**/*.tmp\n!keep/**\n", "other/b.tmp", true),
        ("*\n!src\nsrc/*.bak", "src/a.rs", false),
        ("*\n!src\nsrc/*.bak", "src/a.bak", true),
        ("*\n!src\nsrc/*.bak", "target", true),
        // patterns starting with `**` and otherwise literal are suffix tests
        ("**.pyc", "app/x.pyc", true),
        ("**.pyc", "x.pyc", true),
        ("**/foo", "foo", true),
        ("**/foo", "a/b/foo", true),
        ("**/foo", "afoo", false),
        ("**_test.go", "pkg/a_test.go", true),
        // literal patterns are compared as text, so regex anchors mean nothing
        ("a^b", "a^b", true),
        ("a**", "abc/d", true),
        // whitespace around `!`
        ("*.md\n! README.md", "README.md", false),
    ];

    #[test]
    fn matches_like_docker() {
        for (text, path, want) in CASES {
            let p = Patterns::parse(text).unwrap();
            assert_eq!(p.excludes(path), *want, "patterns {text:?} on {path:?}");
        }
    }

    #[test]
    fn build_files_are_always_sent() {
        let mut p = Patterns::parse("*\n").unwrap();
        p.keep_build_files("docker/app.Dockerfile");
        assert!(!p.excludes(".dockerignore"));
        assert!(!p.excludes("docker/app.Dockerfile"));
        assert!(p.excludes("docker/other"));
        // the re-include opens the excluded directory for the walk
        assert!(!p.can_skip_dir("docker"));
        assert!(p.can_skip_dir("src"));
    }

    #[test]
    fn excluded_dirs_are_skipped_unless_an_exception_starts_inside() {
        let p = Patterns::parse("vendor\nlogs\n!logs/keep/**\n!*/x").unwrap();
        assert!(p.can_skip_dir("vendor"));
        assert!(!p.can_skip_dir("logs"));
        assert!(!p.can_skip_dir("logs/keep"));
        // Docker compares literal text, so a wildcard exception does not reopen `vendor/`.
        assert!(p.can_skip_dir("vendor"));
    }

    #[test]
    fn odd_dockerfile_names_are_still_kept() {
        let mut p = Patterns::parse("*\n").unwrap();
        p.keep_build_files("Dockerfile[");
        assert!(!p.excludes("Dockerfile["));
    }

    #[test]
    fn bad_patterns_name_their_line() {
        let err = Patterns::parse("ok\n[unclosed").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.pattern, "[unclosed");
        let err = Patterns::parse("!").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(Patterns::parse("trailing\\").is_err());
    }

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("//a//b", "/a/b"),
            ("/", "/"),
            ("a/./b/../c", "a/c"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }
}
