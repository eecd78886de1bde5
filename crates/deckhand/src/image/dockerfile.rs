//! A scan of Dockerfile text for what only BuildKit builds, so choosing the classic builder
//! for such a file is a clear error naming the lines, not a failed build (pure).

/// A Dockerfile feature the classic builder does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    RunMount,
    RunNetwork,
    RunSecurity,
    Heredoc,
    /// `--link` on COPY or ADD.
    CopyLink,
    /// `--parents` on COPY or ADD.
    CopyParents,
    /// `--exclude` on COPY or ADD.
    CopyExclude,
    AddChecksum,
    SyntaxDirective,
    CheckDirective,
}

impl Feature {
    /// The feature as a person would name it in a message.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::RunMount => "RUN --mount",
            Feature::RunNetwork => "RUN --network",
            Feature::RunSecurity => "RUN --security",
            Feature::Heredoc => "a heredoc (<<EOF)",
            Feature::CopyLink => "COPY --link",
            Feature::CopyParents => "COPY --parents",
            Feature::CopyExclude => "COPY --exclude",
            Feature::AddChecksum => "ADD --checksum",
            Feature::SyntaxDirective => "the # syntax= directive",
            Feature::CheckDirective => "the # check= directive",
        }
    }
}

/// One use of a feature: the 1-based line its instruction (or directive) starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureUse {
    pub feature: Feature,
    pub line: usize,
}

/// Every BuildKit-only feature `text` uses, in line order.
///
/// Read as BuildKit's parser reads the file: parser directives (`# syntax=`, `# check=`,
/// `# escape=`) only before anything else, a blank line or another comment; instructions in
/// any case; lines ending in the escape character (`\`, or what `# escape=` set) continue the
/// instruction, and comment or blank lines inside one are skipped; flags only before the
/// instruction's first argument; heredoc bodies skipped. A heredoc is an argument of RUN, COPY
/// or ADD (shell form) that begins `<<`, `<<-` or a file descriptor and `<<`, then a name,
/// optionally quoted; the arguments are split on whitespace outside quotes, so `<<` inside a
/// quoted string (`RUN echo "a <<b"`), after another character (`cat<<EOF`) or as `<<<` is
/// not one — simpler than a shell's reading, and the same on every Dockerfile seen in
/// practice.
pub fn buildkit_only(text: &str) -> Vec<FeatureUse> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut uses = Vec::new();
    let mut escape = '\\';
    let mut i = 0;

    // Parser directives: only while every line so far is one.
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        match key.as_str() {
            "syntax" => uses.push(FeatureUse {
                feature: Feature::SyntaxDirective,
                line: i + 1,
            }),
            "check" => uses.push(FeatureUse {
                feature: Feature::CheckDirective,
                line: i + 1,
            }),
            "escape" if value == "`" => escape = '`',
            "escape" => escape = '\\',
            // An unknown directive is a comment, and ends the directives.
            _ => break,
        }
        i += 1;
    }

    while i < lines.len() {
        let start = i;
        let first = lines[i].trim_start();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        // Join the continued lines; comment and blank lines inside are skipped.
        let mut joined = String::new();
        let mut piece = first;
        loop {
            match continued(piece, escape) {
                Some(head) => {
                    joined.push_str(head);
                    joined.push(' ');
                }
                None => {
                    joined.push_str(piece);
                    break;
                }
            }
            let next = loop {
                match lines.get(i) {
                    None => break None,
                    Some(l) => {
                        i += 1;
                        let t = l.trim_start();
                        if !t.is_empty() && !t.starts_with('#') {
                            break Some(*l);
                        }
                    }
                }
            };
            match next {
                Some(l) => piece = l,
                None => break,
            }
        }
        let line = start + 1;
        let heredocs = instruction(&joined, line, &mut uses);
        // The heredoc bodies follow the instruction, each up to its terminator.
        for (name, strip_tabs) in heredocs {
            while let Some(l) = lines.get(i) {
                i += 1;
                let candidate = if strip_tabs {
                    l.trim_start_matches('\t')
                } else {
                    l
                };
                if candidate == name {
                    break;
                }
            }
        }
    }
    uses
}

/// `uses` for a message: "RUN --mount (line 3), a heredoc (<<EOF) (line 7)".
pub fn describe_uses(uses: &[FeatureUse]) -> String {
    uses.iter()
        .map(|u| format!("{} (line {})", u.feature.describe(), u.line))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A parser directive line, `# key = value`: the key in lower case, and the value.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_matches([' ', '\t']);
    let value = value.trim_matches([' ', '\t']);
    let mut chars = key.chars();
    let word = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric());
    (word && !value.is_empty()).then(|| (key.to_ascii_lowercase(), value.to_string()))
}

/// The line without its continuation (the escape character, then only blanks), if it has one.
fn continued(line: &str, escape: char) -> Option<&str> {
    line.trim_end_matches([' ', '\t']).strip_suffix(escape)
}

/// Notes the features of one instruction (its lines joined) and returns its heredocs: each
/// terminator, and whether leading tabs are stripped before comparing (`<<-`).
fn instruction(text: &str, line: usize, uses: &mut Vec<FeatureUse>) -> Vec<(String, bool)> {
    let words = words(text);
    let Some(keyword) = words.first() else {
        return Vec::new();
    };
    let mut keyword = keyword.to_ascii_uppercase();
    let mut rest = &words[1..];
    // ONBUILD wraps another instruction, whose flags are the same features.
    if keyword == "ONBUILD" {
        let Some(inner) = rest.first() else {
            return Vec::new();
        };
        keyword = inner.to_ascii_uppercase();
        rest = &rest[1..];
    }
    let mut note = |feature| uses.push(FeatureUse { feature, line });
    let flags = rest.iter().take_while(|w| w.starts_with("--"));
    for flag in flags.clone() {
        let name = flag[2..]
            .split('=')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let feature = match (keyword.as_str(), name.as_str()) {
            ("RUN", "mount") => Feature::RunMount,
            ("RUN", "network") => Feature::RunNetwork,
            ("RUN", "security") => Feature::RunSecurity,
            ("COPY" | "ADD", "link") => Feature::CopyLink,
            ("COPY" | "ADD", "parents") => Feature::CopyParents,
            ("COPY" | "ADD", "exclude") => Feature::CopyExclude,
            ("ADD", "checksum") => Feature::AddChecksum,
            _ => continue,
        };
        note(feature);
    }
    let args = &rest[flags.count()..];
    let shell_form = args.first().is_some_and(|a| !a.starts_with('['));
    if !matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") || !shell_form {
        return Vec::new();
    }
    let heredocs: Vec<(String, bool)> = args.iter().filter_map(|w| heredoc(w)).collect();
    if !heredocs.is_empty() {
        note(Feature::Heredoc);
    }
    heredocs
}

/// A word that opens a heredoc (`<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`, `3<<EOF`): its
/// terminator and whether it strips tabs.
fn heredoc(word: &str) -> Option<(String, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (strip_tabs, name) = match rest.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, rest),
    };
    let name = ['"', '\'']
        .iter()
        .find_map(|q| name.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(name);
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    ok.then(|| (name.to_string(), strip_tabs))
}

/// Whitespace-separated words; whitespace inside single or double quotes does not split, and
/// the quotes are kept, so a quoted word is never taken for a flag or a heredoc.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            None => {}
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::Feature::*;
    use super::*;

    #[test]
    fn buildkit_only_features_are_found_where_they_start() {
        /// (what the case is, the Dockerfile, the features found and their lines)
        type Case = (&'static str, &'static str, &'static [(Feature, usize)]);
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("a classic file", "FROM alpine\nRUN echo hi\nCOPY a b\n", &[]),
            ("a cache mount", "FROM a\nRUN --mount=type=cache,target=/x make\n", &[(RunMount, 2)]),
            ("in any case", "from a\nrun --mount=type=secret,id=n cat /run/secrets/n\n", &[(RunMount, 2)]),
            ("an argument is no flag", "FROM a\nRUN echo --mount\nRUN make -- --network=none\n", &[]),
            ("network and security", "FROM a\nRUN --network=none --security=insecure make\n", &[(RunNetwork, 2), (RunSecurity, 2)]),
            ("COPY --link among flags", "FROM a\nCOPY --link --chown=1 a b\n", &[(CopyLink, 2)]),
            ("COPY --chown is classic", "FROM a\nCOPY --chown=1:1 a b\nADD --chown=1 u d\n", &[]),
            ("ADD --checksum", "FROM a\nADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://x/a.tar /a\n", &[(AddChecksum, 2)]),
            ("COPY --parents and --exclude", "FROM a\nCOPY --parents ./x/**/*.go /src/\nCOPY --exclude=*.md . /src\n", &[(CopyParents, 2), (CopyExclude, 3)]),
            ("ADD --link", "FROM a\nADD --link a.tar /\n", &[(CopyLink, 2)]),
            ("a flag of another instruction", "FROM --platform=linux/amd64 a\nRUN --mountx make\n", &[]),
            ("the syntax directive", "# syntax=docker/dockerfile:1\nFROM a\n", &[(SyntaxDirective, 1)]),
            ("directives in any case, spaced", "#  Syntax = docker/dockerfile:1\n# CHECK=skip=all\nFROM a\n", &[(SyntaxDirective, 1), (CheckDirective, 2)]),
            ("after the escape directive", "# escape=\\\n# syntax=docker/dockerfile:1\nFROM a\n", &[(SyntaxDirective, 2)]),
            ("a syntax comment after an instruction", "FROM a\n# syntax=docker/dockerfile:1\n", &[]),
            ("a syntax comment after a blank line", "\n# syntax=docker/dockerfile:1\nFROM a\n", &[]),
            ("a syntax comment after a comment", "# build me\n# syntax=docker/dockerfile:1\nFROM a\n", &[]),
            ("after an unknown directive", "# foo=bar\n# syntax=docker/dockerfile:1\nFROM a\n", &[]),
            ("a byte order mark", "\u{feff}# syntax=docker/dockerfile:1\nFROM a\n", &[(SyntaxDirective, 1)]),
            ("a continued instruction is reported at its first line", "FROM a\nRUN \\\n  --mount=type=cache,target=/c \\\n  make\n", &[(RunMount, 2)]),
            ("comments and blanks inside a continuation", "FROM a\nRUN apt-get update \\\n# --mount=type=cache\n\n  && make\nRUN --network=none x\n", &[(RunNetwork, 6)]),
            ("a flag after a continuation, before the arguments", "FROM a\nCOPY \\\n # note\n --link a b\n", &[(CopyLink, 2)]),
            ("the backtick escape", "# escape=`\nFROM a\nRUN `\n  --mount=type=cache,target=/c make\n", &[(RunMount, 3)]),
            ("a backslash is no continuation with the backtick escape", "# escape=`\nFROM a\nRUN echo \\\nRUN --mount=type=cache,target=/c make\n", &[(RunMount, 4)]),
            ("CRLF line ends", "FROM a\r\nRUN \\\r\n  --mount=type=cache,target=/c make\r\n", &[(RunMount, 2)]),
            ("a heredoc", "FROM a\nRUN <<EOF\napt-get update\nEOF\n", &[(Heredoc, 2)]),
            ("heredoc bodies are not instructions", "FROM a\nRUN <<EOF\nRUN --mount=type=cache,target=/c make\n# syntax=x\nEOF\nCOPY --link a b\n", &[(Heredoc, 2), (CopyLink, 6)]),
            ("quoted and tab-stripped heredocs", "FROM a\nRUN <<-\"EOF\" sh\n\tRUN --network=none\n\tEOF\nCOPY <<'X' /a\nADD --link\nX\n", &[(Heredoc, 2), (Heredoc, 5)]),
            ("two heredocs on one instruction", "FROM a\nRUN <<A <<B\na\nA\nRUN --mount=x\nB\nRUN --network=none y\n", &[(Heredoc, 2), (RunNetwork, 7)]),
            ("a heredoc with a file descriptor, after a command", "FROM a\nRUN python3 3<<EOF\nprint(1)\nEOF\n", &[(Heredoc, 2)]),
            ("flags and a heredoc together", "FROM a\nRUN --mount=type=cache,target=/c <<EOF\nmake\nEOF\n", &[(RunMount, 2), (Heredoc, 2)]),
            ("<< in a quoted string", "FROM a\nRUN echo \"a<<b\"\nRUN echo 'x <<EOF'\n", &[]),
            ("<< inside a word, and a herestring", "FROM a\nRUN cat<<EOF\nRUN cat <<<\"word\"\n", &[]),
            ("heredocs only in RUN, COPY and ADD", "FROM a\nLABEL x=<<EOF\nENV A=<<B\n", &[]),
            ("the exec form has no heredoc", "FROM a\nRUN [\"sh\", \"<<EOF\"]\n", &[]),
            ("ONBUILD's instruction", "FROM a\nONBUILD RUN --mount=type=cache,target=/c make\n", &[(RunMount, 2)]),
            ("a quoted flag is an argument", "FROM a\nRUN \"--mount=type=cache\" make\n", &[]),
            ("a continuation at the end of the file", "FROM a\nRUN --network=none \\\n", &[(RunNetwork, 2)]),
            ("an unterminated heredoc", "FROM a\nRUN <<EOF\nCOPY --link a b\n", &[(Heredoc, 2)]),
            ("an empty file", "", &[]),
        ];
        assert!(cases.len() >= 15);
        for (name, text, want) in cases {
            let want: Vec<FeatureUse> = want
                .iter()
                .map(|&(feature, line)| FeatureUse { feature, line })
                .collect();
            assert_eq!(buildkit_only(text), want, "{name}:\n{text}");
        }
    }

    #[test]
    fn uses_are_described_for_a_message() {
        let uses = [
            FeatureUse {
                feature: RunMount,
                line: 3,
            },
            FeatureUse {
                feature: Heredoc,
                line: 7,
            },
        ];
        assert_eq!(
            describe_uses(&uses),
            "RUN --mount (line 3), a heredoc (<<EOF) (line 7)"
        );
        assert_eq!(describe_uses(&[]), "");
        for f in [
            RunMount,
            RunNetwork,
            RunSecurity,
            Heredoc,
            CopyLink,
            CopyParents,
            CopyExclude,
            AddChecksum,
            SyntaxDirective,
            CheckDirective,
        ] {
            assert!(!f.describe().is_empty(), "{f:?}");
        }
    }
}
