//! A pattern's syntax as Docker reads it: the `filepath.Match` check that rejects a pattern
//! up front, and the translation of a pattern into the Go regular expression Docker matches.

/// How Docker tests one pattern: literal patterns are compared as bytes, only patterns with
/// wildcards, classes or escapes go through a regular expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The path equals the pattern.
    Exact,
    /// `literal**`: the path starts with the pattern minus its trailing `**`.
    Prefix,
    /// `**literal`: the path ends with the pattern minus its leading `**` (and `**/x` also
    /// matches `x` itself).
    Suffix,
    /// The Go regular expression Docker builds, as characters.
    Regex(Vec<char>),
}

/// Go's `filepath.Match` syntax check on Linux, which Docker runs on every pattern before
/// using it: `Err` says what is wrong.
pub fn check(pattern: &[u8]) -> Result<(), &'static str> {
    let mut rest = pattern;
    while !rest.is_empty() {
        while let [b'*', tail @ ..] = rest {
            rest = tail;
        }
        let end = chunk_end(rest);
        check_chunk(&rest[..end])?;
        rest = &rest[end..];
    }
    Ok(())
}

/// Where the chunk at the start of `pattern` ends: at the first `*` outside brackets.
fn chunk_end(pattern: &[u8]) -> usize {
    let mut in_class = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'*' if !in_class => return i,
            _ => {}
        }
        i += 1;
    }
    pattern.len()
}

fn check_chunk(mut chunk: &[u8]) -> Result<(), &'static str> {
    while let [first, tail @ ..] = chunk {
        chunk = tail;
        match first {
            b'[' => {
                if let [b'^', tail @ ..] = chunk {
                    chunk = tail;
                }
                let mut ranges = 0;
                loop {
                    if let [b']', tail @ ..] = chunk {
                        if ranges > 0 {
                            chunk = tail;
                            break;
                        }
                    }
                    chunk = class_char(chunk)?;
                    if let [b'-', tail @ ..] = chunk {
                        chunk = class_char(tail)?;
                    }
                    ranges += 1;
                }
            }
            b'\\' => match chunk {
                [_, tail @ ..] => chunk = tail,
                [] => return Err("it ends with `\\`, which escapes nothing"),
            },
            _ => {}
        }
    }
    Ok(())
}

/// One character of a `[...]` class (Go's `getEsc`), returning what follows it.
fn class_char(chunk: &[u8]) -> Result<&[u8], &'static str> {
    const UNCLOSED: &str = "a `[` class is not closed with `]`";
    let chunk = match chunk {
        [] => return Err(UNCLOSED),
        [b'-' | b']', ..] => {
            return Err("a `[` class has an empty range or starts with `]` or `-`; escape them as `\\]` and `\\-`")
        }
        [b'\\'] => return Err(UNCLOSED),
        [b'\\', tail @ ..] => tail,
        _ => chunk,
    };
    let width = match chunk.utf8_chunks().next() {
        Some(c) if !c.valid().is_empty() => c.valid().chars().next().map_or(1, char::len_utf8),
        _ => return Err("a `[` class holds a byte that is not UTF-8"),
    };
    match &chunk[width..] {
        [] => Err(UNCLOSED),
        rest => Ok(rest),
    }
}

/// Docker's translation of a cleaned pattern (Go's `Pattern.compile` on Linux). The pattern is
/// read as Go's text scanner reads it: a byte that is not UTF-8 becomes U+FFFD and a BOM at
/// the very start is skipped (both only matter to the regular expression).
pub fn plan(pattern: &[u8]) -> Plan {
    let mut chars = go_chars(pattern);
    if chars.first() == Some(&'\u{feff}') {
        chars.remove(0);
    }
    let mut re = String::from("^");
    let mut plan = Kind::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if plan == Kind::Exact {
                        plan = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        plan = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    plan = Kind::Regex;
                }
                if first {
                    plan = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                plan = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                plan = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                re.push('\\');
                if let Some(&next) = chars.get(i) {
                    i += 1;
                    re.push(next);
                    plan = Kind::Regex;
                }
            }
            '[' | ']' => {
                re.push(ch);
                plan = Kind::Regex;
            }
            _ => re.push(ch),
        }
        first = false;
    }
    match plan {
        Kind::Exact => Plan::Exact,
        Kind::Prefix => Plan::Prefix,
        Kind::Suffix => Plan::Suffix,
        Kind::Regex => {
            re.push('$');
            Plan::Regex(re.chars().collect())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// Bytes as Go decodes them into runes: each byte that does not start a valid UTF-8 sequence
/// is one U+FFFD.
pub fn go_chars(bytes: &[u8]) -> Vec<char> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars());
        out.extend(chunk.invalid().iter().map(|_| char::REPLACEMENT_CHARACTER));
    }
    out
}

/// [`go_chars`] as a string, the text Docker's regular expressions see.
pub fn go_string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => go_chars(bytes).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_filepath_match_rejects() {
        let bad: &[&[u8]] = &[
            b"[",
            b"[unclosed",
            b"a[",
            b"[]",
            b"[]a]",
            b"[^]",
            b"[a-]",
            b"[-a]",
            b"[a-]b]",
            b"x\\",
            b"[\\",
            b"[a\\",
            b"*[",
            b"[\xE9]",
            b"ok*[bad",
        ];
        for p in bad {
            assert!(
                check(p).is_err(),
                "{:?} should be rejected",
                String::from_utf8_lossy(p)
            );
        }
        let good: &[&[u8]] = &[
            b"a",
            b"*",
            b"**",
            b"[a]",
            b"[^a]",
            b"[!a]",
            b"[a-c]",
            b"[\\]]",
            b"[\\-]",
            b"[*]",
            b"[z-a]",
            b"\\*",
            b"\\\\",
            b"a]",
            b"caf\xE9",
            b"[[:alpha:]]",
            b"[\xC3\xA9]",
        ];
        for p in good {
            assert_eq!(
                check(p),
                Ok(()),
                "{:?} should be accepted",
                String::from_utf8_lossy(p)
            );
        }
    }

    #[test]
    fn plans_like_docker() {
        let regex = |s: &str| Plan::Regex(s.chars().collect());
        let cases: &[(&[u8], Plan)] = &[
            (b"a/b", Plan::Exact),
            (b"a.b", Plan::Exact),
            (b"a^b", Plan::Exact),
            (b"a**", Plan::Prefix),
            (b"a/**", Plan::Prefix),
            (b"**", Plan::Suffix),
            (b"**/foo", Plan::Suffix),
            (b"**.pyc", Plan::Suffix),
            (b"*.go", regex("^[^/]*\\.go$")),
            (b"**/*.md", regex("^(.*/)?[^/]*\\.md$")),
            (b"a/**/z", regex("^a/(.*/)?z$")),
            (b"a?/**", regex("^a[^/]/.*$")),
            (b"\\*", regex("^\\*$")),
            (b"[*]", regex("^[[^/]*]$")),
            (b"x{1}", Plan::Exact),
            (b"\xE9*", regex("^\u{FFFD}[^/]*$")),
            (b"\xEF\xBB\xBF*", regex("^[^/]*$")),
        ];
        for (pattern, want) in cases {
            assert_eq!(
                &plan(pattern),
                want,
                "{:?}",
                String::from_utf8_lossy(pattern)
            );
        }
    }

    #[test]
    fn decodes_like_go() {
        assert_eq!(go_string(b"a\xE9\x80b"), "a\u{FFFD}\u{FFFD}b");
        assert_eq!(go_string(b"\xED\xA0\x80"), "\u{FFFD}\u{FFFD}\u{FFFD}");
        assert_eq!(go_string("é".as_bytes()), "é");
    }
}
