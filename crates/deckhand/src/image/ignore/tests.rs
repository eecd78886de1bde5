use super::*;

/// (dockerignore text, path, left out by the walk?)
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
    ("a/**", "a", false),
    ("a/**", "b/a/c", false),
    ("**", "anything/at/all", true),
    ("**/", "x", true),
    // `?` is one character, never `/`, and one character is one UTF-8 rune
    ("?.txt", "a.txt", true),
    ("?.txt", "ab.txt", false),
    ("?.txt", "é.txt", true),
    ("a?b", "a/b", false),
    // character classes, read by Go's regexp: `[^...]` negates, `[!...]` does not
    ("[abc].txt", "b.txt", true),
    ("[^abc].txt", "b.txt", false),
    ("[^abc].txt", "d.txt", true),
    ("[!a].txt", "!.txt", true),
    ("[!a].txt", "b.txt", false),
    ("[a-c]/x", "c/x", true),
    ("[[:digit:]]*", "7up", true),
    ("[*]", "*", false),
    ("[*]", "[^]", true),
    ("\\d.txt", "5.txt", true),
    // regex metacharacters are literal
    ("a.b", "axb", false),
    ("a.b*", "axb", false),
    ("a+b", "a+b", true),
    ("(x)*", "(x)y", true),
    ("{a,b}", "a", false),
    ("a|b*", "a|bc", true),
    ("$*", "$x", true),
    // escapes
    ("\\*", "*", true),
    ("\\*", "x", false),
    ("\\[x]", "[x]", true),
    // cleaning: leading slash, ./, trailing slash, `..`
    ("/secret", "secret", true),
    ("./secret", "secret", true),
    ("build/", "build/out.o", true),
    ("a/../b", "b", true),
    ("a//b", "a/b", true),
    // comments and blank lines
    ("# comment\n\n  tmp  ", "tmp", true),
    ("# tmp", "# tmp", false),
    ("  # tmp", "# tmp", true),
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
    ("*.md\n! README.md", "README.md", false),
    // `/!keep` is cleaned to `!keep`, an exception
    ("*\n/!keep", "keep", false),
    ("*\n/!keep", "other", true),
    // a parent's result is reused, not re-tested: `!docs` was never tried on `docs`
    ("**/*.md\n!docs", "docs/guide.md", true),
    ("**/*.md\n!docs", "docs", false),
    // ... and `**/build` was skipped for the already excluded `build`
    ("build\n!build/keep.txt\n**/build", "build/keep.txt", false),
    ("build\n!build/keep.txt\n**/build", "build/other.txt", true),
    ("build\n!build/keep.txt\n**/build", "src/build", true),
    // a parent's match carries to its children even where the pattern would not match them
    ("docs\n!docs/*.md\ndocs/a*", "docs/a.md", true),
    ("docs\n!docs/*.md\ndocs/a*", "docs/b.md", false),
    // `!a` is only tried on `a/b/d` itself, not on its parent `a`
    ("a/b\n!a/b/c\n!a", "a/b/d", true),
    ("a/b\n!a/b/c\n!a", "a/b/c/d", false),
    // an excluded directory is skipped unless an exception's text starts inside it
    ("vendor\n!*/keep", "vendor/keep", true),
    ("vendor\n!vendor/keep", "vendor/keep", false),
    ("vendor\n!vendor/keep", "vendor/other", true),
    // patterns starting with `**` and otherwise literal are suffix tests
    ("**.pyc", "app/x.pyc", true),
    ("**.pyc", "x.pyc", true),
    ("**/foo", "foo", true),
    ("**/foo", "a/b/foo", true),
    ("**/foo", "afoo", false),
    ("**_test.go", "pkg/a_test.go", true),
    // literal patterns are compared as bytes, so regex anchors mean nothing
    ("a^b", "a^b", true),
    ("a^b*", "a^bc", false),
    ("a**", "abc/d", true),
];

#[test]
fn matches_like_docker() {
    for (text, path, want) in CASES {
        let p = Patterns::parse(text.as_bytes()).unwrap();
        assert_eq!(
            p.leaves_out(path.as_bytes()),
            Ok(*want),
            "patterns {text:?} on {path:?}"
        );
    }
}

/// (ignore file bytes, path bytes, left out?)
const BYTE_CASES: &[(&[u8], &[u8], bool)] = &[
    // a Latin-1 ignore file: literal patterns compare bytes
    (b"caf\xE9\n", b"caf\xE9", true),
    (b"caf\xE9\n", "café".as_bytes(), false),
    // in a regular expression an invalid byte is U+FFFD, which any invalid byte matches
    (b"caf\xE9*\n", b"caf\xE9.txt", true),
    (b"caf\xE9*\n", b"caf\xFF.txt", true),
    (b"caf\xE9*\n", "café.txt".as_bytes(), false),
    // `?` and `*` take a whole rune, or one invalid byte
    (b"caf?.txt\n", b"caf\xE9.txt", true),
    (b"caf?.txt\n", "café.txt".as_bytes(), true),
    (b"caf?.txt\n", b"caf\xE9\x80.txt", false),
    (b"*.txt\n", b"\xFF\xFE.txt", true),
    (b"*.txt\n", b"\xFF/a.txt", false),
    // a BOM is dropped from the first line only
    (b"\xEF\xBB\xBFsecret\n", b"secret", true),
    (b"x\n\xEF\xBB\xBFsecret\n", b"secret", false),
];

#[test]
fn matches_bytes_like_docker() {
    for (text, path, want) in BYTE_CASES {
        let p = Patterns::parse(text).unwrap();
        assert_eq!(
            p.leaves_out(path),
            Ok(*want),
            "patterns {:?} on {:?}",
            String::from_utf8_lossy(text),
            String::from_utf8_lossy(path)
        );
    }
}

#[test]
fn parent_results_are_carried() {
    let p = Patterns::parse(b"**/*.md\n!docs").unwrap();
    let (excluded, docs) = p.matches(b"docs", &MatchInfo::default()).unwrap();
    assert!(!excluded);
    assert_eq!(docs.matched, [false, false]);
    assert!(p.matches(b"docs/a.md", &docs).unwrap().0);
    // without the parent's results, every parent is tested (Docker's MatchesOrParentMatches)
    assert!(!p.matches(b"docs/a.md", &MatchInfo::default()).unwrap().0);
}

#[test]
fn build_files_are_always_sent() {
    let mut p = Patterns::parse(b"*\n").unwrap();
    p.keep_build_files(Some(b"docker/app.Dockerfile"));
    assert_eq!(p.leaves_out(b".dockerignore"), Ok(false));
    assert_eq!(p.leaves_out(b"docker/app.Dockerfile"), Ok(false));
    assert_eq!(p.leaves_out(b"docker/other"), Ok(true));
    // the re-include opens the excluded directory for the walk
    assert!(!p.can_skip_dir(b"docker"));
    assert!(p.can_skip_dir(b"src"));
}

#[test]
fn build_files_are_sent_where_docker_loses_them() {
    // Docker's own check says `docs/Dockerfile` is not excluded (its parent matches `!docs`),
    // but its walk leaves it out; deckhand keeps it.
    let mut p = Patterns::parse(b"**/Dockerfile\n!docs\n").unwrap();
    assert_eq!(p.leaves_out(b"docs/Dockerfile"), Ok(true));
    p.keep_build_files(Some(b"docs/Dockerfile"));
    assert_eq!(p.leaves_out(b"docs/Dockerfile"), Ok(false));
    assert_eq!(p.leaves_out(b"src/Dockerfile"), Ok(true));
    // deep under an excluded directory, past the depth Docker's check looks at
    let mut p = Patterns::parse(b"**/x\n").unwrap();
    p.keep_build_files(Some(b"a/b/x/Dockerfile"));
    assert_eq!(p.leaves_out(b"a/b/x/Dockerfile"), Ok(false));
    assert_eq!(p.leaves_out(b"a/b/x/other"), Ok(true));
}

#[test]
fn build_files_are_kept_by_exact_name() {
    let mut p = Patterns::parse(b"*\n").unwrap();
    p.keep_build_files(Some(b"Dockerfile["));
    assert_eq!(p.leaves_out(b"Dockerfile["), Ok(false));
    let mut p = Patterns::parse(b"*\n").unwrap();
    p.keep_build_files(Some(b"D*"));
    assert_eq!(p.leaves_out(b"D*"), Ok(false));
    assert_eq!(p.leaves_out(b"Dx"), Ok(true));
    // `.dockerignore` is kept even when the Dockerfile lives outside the context
    let mut p = Patterns::parse(b"*\n").unwrap();
    p.keep_build_files(None);
    assert_eq!(p.leaves_out(b".dockerignore"), Ok(false));
    assert_eq!(p.patterns.len(), 2);
    // nothing is added when nothing is excluded
    let mut p = Patterns::parse(b"tmp\n").unwrap();
    p.keep_build_files(Some(b"Dockerfile"));
    assert_eq!(p.patterns.len(), 1);
}

#[test]
fn excluded_dirs_are_skipped_unless_an_exception_starts_inside() {
    let p = Patterns::parse(b"vendor\nlogs\n!logs/keep/**\n!*/x\n!vendorx").unwrap();
    assert!(p.can_skip_dir(b"vendor"));
    assert!(!p.can_skip_dir(b"logs"));
    assert!(!p.can_skip_dir(b"logs/keep"));
    assert!(p.can_skip_dir(b"logs/other"));
}

#[test]
fn refused_patterns_name_their_line() {
    // (file, line, pattern)
    let cases: &[(&[u8], usize, &str)] = &[
        (b"ok\n[unclosed", 2, "[unclosed"),
        (b"!", 1, "!"),
        (b"a\n\n! \n", 3, "!"),
        (b"trailing\\", 1, "trailing\\"),
        (b"[]a]", 1, "[]a]"),
        (b"[a-]", 1, "[a-]"),
        (b"[\xE9]", 1, "[\u{FFFD}]"),
        // `/` cleans to itself, but `!/` cleans to `!`
        (b"!/", 1, "!/"),
    ];
    for (file, line, pattern) in cases {
        let err = Patterns::parse(file).unwrap_err();
        assert_eq!(
            (err.line, err.pattern.as_str()),
            (*line, *pattern),
            "{:?}",
            String::from_utf8_lossy(file)
        );
        assert!(!err.reason.is_empty());
    }
    assert!(Patterns::parse(b"/\n").is_ok());
}

#[test]
fn patterns_go_cannot_compile_fail_when_tested() {
    let p = Patterns::parse(b"a\n\\m*\n").unwrap();
    let err = p.leaves_out(b"b").unwrap_err();
    assert_eq!((err.line, err.pattern.as_str()), (2, "\\m*"));
    // never tested (the path is already excluded): no error, as in Docker
    assert_eq!(p.leaves_out(b"a"), Ok(true));
    let p = Patterns::parse(b"!\\m*\n").unwrap();
    assert_eq!(p.leaves_out(b"b"), Ok(false));
    let p = Patterns::parse(b"[z-a]*\n").unwrap();
    assert!(p.leaves_out(b"b").is_err());
}
