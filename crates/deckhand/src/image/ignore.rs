//! `.dockerignore` matching exactly as the Docker CLI applies it when it sends a build
//! context, so users get the files `docker build` would send.
//!
//! The rules, from Docker's ignore-file reader, its pattern matcher and its archive walker:
//!
//! - Reading (`read`): the file is bytes; a UTF-8 BOM is dropped from the first line; a line
//!   whose first byte is `#` is a comment; lines are trimmed of Unicode white space; a leading
//!   `!` is taken off and the rest trimmed again; the pattern is cleaned like Go's
//!   `filepath.Clean` and a leading `/` dropped when more follows. So `/!keep` becomes `!keep`,
//!   which the matcher then reads as an exception.
//! - Syntax (`glob`): every pattern must pass Go's `filepath.Match` check (a `[` class must
//!   close, may not start with `]` or `-`, nor hold bytes that are not UTF-8; a pattern may not
//!   end in `\`); a lone `!` is refused. These errors name the line.
//! - Matching: a pattern without wildcards is compared as bytes (`a.b`, `a^b` are plain
//!   names), `lit**` is a prefix test, `**lit` a suffix test (`**/x` also matches `x`), any
//!   other pattern becomes Docker's Go regular expression: `*` is `[^/]*`, `?` is `[^/]`, `**`
//!   is `(.*/)?` (or `.*` at the end), `\x` passes `\x` to Go, `[` and `]` pass through, so a
//!   class is read by Go's regexp: `[^a]` negates, `[!a]` does not, `[[:alpha:]]` and `\d` are
//!   ASCII classes, and `[*]` turns into `[[^/]*]` (any run of `[`, `^`, `/` then `]`), all as
//!   in Docker (`goregex` rewrites Go's syntax for Rust's engine).
//! - Bytes: paths are matched as bytes. Go's regexp reads text as UTF-8 runes, a byte that is
//!   not UTF-8 being one U+FFFD; the regular expressions here see the path decoded the same
//!   way, so `?` is one character (`?.txt` matches `é.txt`), and a pattern's own invalid bytes
//!   (which Go's scanner turns into U+FFFD) match any invalid byte. Literal patterns compare
//!   raw bytes.
//! - A regular expression Go cannot compile (`\m`, `[z-a]`, `[[:nope:]]`) passes the syntax
//!   check; Docker fails the build only when that pattern is first tested against a path, and
//!   so does deckhand, naming the line.
//! - Deciding ([`Patterns::matches`]): patterns are tried in order; a plain pattern is only
//!   tried while the path is not excluded and an exception only while it is; the last match
//!   wins. The walk carries, per pattern, whether it matched the parent directory: a pattern
//!   that matched the parent matches the child without a test, any other is tested against
//!   the child's own path only. So with `**/*.md` then `!docs`, `docs/guide.md` stays out
//!   (`!docs` was never tried on `docs`, nothing being excluded yet), and with `build`,
//!   `!build/keep.txt`, `**/build` the file `build/keep.txt` is sent (`**/build` was skipped
//!   for the already excluded `build`).
//! - Skipping ([`Patterns::can_skip_dir`]): an excluded directory is not entered unless an
//!   exception's text plus `/` starts with the directory plus `/`; so `!*/keep` does not
//!   reopen an excluded `dir/`.
//! - Build files ([`Patterns::keep_build_files`]): `.dockerignore` and the Dockerfile are
//!   always sent; an exception for each is added when the walk would leave it out. The Docker
//!   CLI decides this with its older one-level test (the parent path cut to the pattern's
//!   depth), which misses some exclusions, for example `**/Dockerfile` then `!docs` with
//!   `-f docs/Dockerfile`: Docker then sends no Dockerfile and the build fails. deckhand asks
//!   the walk's own question, and adds the exception as an exact name (Docker adds it as a
//!   pattern, so a Dockerfile named `Dockerfile[` breaks Docker's build and one named
//!   `a*` would re-include `ab` too).

mod glob;
mod goregex;
mod read;

use glob::Plan;

/// One line of a `.dockerignore` file, ready to test.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern text, without the leading `!`.
    text: Vec<u8>,
    /// True for `!pattern` (re-include).
    exception: bool,
    /// 1-based line in the ignore file (0 for the build files added by deckhand).
    line: usize,
    test: Test,
}

/// How a pattern is tested.
#[derive(Debug, Clone)]
enum Test {
    Exact,
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Regex(regex::Regex),
    /// Go's regexp rejects this one: an error when it is first tested, as in Docker.
    Invalid(String),
}

/// The patterns of one `.dockerignore`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Patterns {
    patterns: Vec<Pattern>,
}

/// Which patterns matched a directory (or one of its parents), handed to its children.
/// The default is the answer for the context root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    matched: Vec<bool>,
}

/// A pattern Docker refuses, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub line: usize,
    /// The pattern as read (lossy UTF-8, for messages).
    pub pattern: String,
    pub reason: String,
}

impl Patterns {
    /// Reads a `.dockerignore` file's bytes.
    pub fn parse(file: &[u8]) -> Result<Self, PatternError> {
        let lines = read::read_all(file).map_err(|line| PatternError {
            line,
            pattern: String::new(),
            reason: "the line is longer than Docker reads (64 KiB); shorten or split it".into(),
        })?;
        let mut patterns = Vec::new();
        for line in lines {
            if let Some(p) = Pattern::new(&line.text, line.number)? {
                patterns.push(p);
            }
        }
        Ok(Self { patterns })
    }

    /// Docker's decision for one path (relative to the context, `/`-separated, as bytes),
    /// given what its parent directory's test returned: whether the path is excluded, and
    /// what to hand to its children if it is a directory.
    pub fn matches(
        &self,
        path: &[u8],
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let mut text = None;
        let mut matched = false;
        let mut info = MatchInfo {
            matched: vec![false; self.patterns.len()],
        };
        for (i, p) in self.patterns.iter().enumerate() {
            let mut hit = parent.matched.get(i).copied().unwrap_or(false);
            if !hit {
                if p.exception != matched {
                    continue;
                }
                hit = p.test(path, &mut text)?;
                // Without the parent's results every parent directory is tested.
                if !hit && parent.matched.is_empty() {
                    for end in parent_ends(path) {
                        if p.test(&path[..end], &mut None).unwrap_or(false) {
                            hit = true;
                            break;
                        }
                    }
                }
            }
            info.matched[i] = hit;
            if hit {
                matched = !p.exception;
            }
        }
        Ok((matched, info))
    }

    /// True if the walk leaves `path` out: an ancestor directory is excluded and skipped, or
    /// the path itself is excluded.
    pub fn leaves_out(&self, path: &[u8]) -> Result<bool, PatternError> {
        let mut info = MatchInfo::default();
        for end in parent_ends(path) {
            let dir = &path[..end];
            let (excluded, next) = self.matches(dir, &info)?;
            if excluded && self.can_skip_dir(dir) {
                return Ok(true);
            }
            info = next;
        }
        Ok(self.matches(path, &info)?.0)
    }

    /// Makes sure the build files are sent: `.dockerignore` itself and the Dockerfile (given
    /// relative to the context, `/`-separated; None when it lives outside the context), each
    /// re-included by its exact name when the walk would leave it out.
    pub fn keep_build_files(&mut self, dockerfile: Option<&[u8]>) {
        for keep in std::iter::once(&b".dockerignore"[..]).chain(dockerfile) {
            // A pattern that fails to compile is reported by the walk; keep the file anyway.
            if self.leaves_out(keep).unwrap_or(true) {
                self.patterns.push(Pattern {
                    text: keep.to_vec(),
                    exception: true,
                    line: 0,
                    test: Test::Exact,
                });
            }
        }
    }

    /// True if an excluded directory can be skipped whole: no exception's text plus `/` starts
    /// with the directory's path plus `/` (Docker compares the text, not the pattern, so
    /// `!*/keep` does not reopen an excluded `dir/`).
    pub fn can_skip_dir(&self, dir: &[u8]) -> bool {
        !self.patterns.iter().any(|p| {
            p.exception
                && p.text.len() >= dir.len()
                && p.text.starts_with(dir)
                && p.text.get(dir.len()).is_none_or(|&b| b == b'/')
        })
    }

    /// True if there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

impl Pattern {
    /// What Docker's matcher makes of one line the reader produced (None for a line it
    /// skips).
    fn new(text: &[u8], line: usize) -> Result<Option<Self>, PatternError> {
        let err = |reason: String| PatternError {
            line,
            pattern: String::from_utf8_lossy(text).into_owned(),
            reason,
        };
        let trimmed = read::trim_space(text);
        if trimmed.is_empty() {
            return Ok(None);
        }
        let cleaned = read::clean(trimmed);
        let (exception, body) = match cleaned.strip_prefix(b"!") {
            Some(body) => (true, body.to_vec()),
            None => (false, cleaned),
        };
        if exception && body.is_empty() {
            return Err(err(
                "an exception `!` needs a pattern after it; add one or remove the line".into(),
            ));
        }
        glob::check(&body).map_err(|why| err(format!("{why}; Docker refuses it")))?;
        let test = match glob::plan(&body) {
            Plan::Exact => Test::Exact,
            Plan::Prefix => Test::Prefix(body[..body.len() - 2].to_vec()),
            Plan::Suffix => Test::Suffix(body[2..].to_vec()),
            Plan::Regex(go) => match goregex::translate(&go) {
                Ok(rust) => match regex::Regex::new(&rust) {
                    Ok(re) => Test::Regex(re),
                    Err(e) => Test::Invalid(format!("it cannot be compiled ({e})")),
                },
                Err(why) => Test::Invalid(format!(
                    "Docker turns it into a Go regular expression that does not compile ({why})"
                )),
            },
        };
        Ok(Some(Self {
            text: body,
            exception,
            line,
            test,
        }))
    }

    /// Tests one path; `text` caches the path as Go's regexp reads it.
    fn test(&self, path: &[u8], text: &mut Option<String>) -> Result<bool, PatternError> {
        Ok(match &self.test {
            Test::Exact => path == self.text,
            Test::Prefix(prefix) => path.starts_with(prefix),
            Test::Suffix(suffix) => {
                path.ends_with(suffix) || suffix.strip_prefix(b"/").is_some_and(|bare| path == bare)
            }
            Test::Regex(re) => re.is_match(text.get_or_insert_with(|| glob::go_string(path))),
            Test::Invalid(reason) => {
                return Err(PatternError {
                    line: self.line,
                    pattern: format!(
                        "{}{}",
                        if self.exception { "!" } else { "" },
                        String::from_utf8_lossy(&self.text)
                    ),
                    reason: reason.clone(),
                })
            }
        })
    }
}

/// The ends of each parent directory in a `/`-separated path (`a/b/c` gives `a`, `a/b`).
fn parent_ends(path: &[u8]) -> impl Iterator<Item = usize> + '_ {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests;
