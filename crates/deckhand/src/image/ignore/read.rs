//! Reading a `.dockerignore` into pattern lines exactly as the Docker CLI's reader does, on
//! bytes, so a file that is not UTF-8 is read as Docker reads it.

/// The longest line Docker's reader accepts (its line scanner's buffer, newline included).
const MAX_LINE: usize = 64 * 1024;

/// One pattern line as the reader hands it on: its 1-based line number and its text, already
/// trimmed and cleaned, with `!` kept in front of exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: Vec<u8>,
}

/// Splits the file into pattern lines: a UTF-8 BOM is dropped from the first line, lines
/// starting with `#` are comments (before any trimming), blank lines are skipped, the text is
/// trimmed of Unicode white space, `!` is taken off and the rest trimmed again, then cleaned
/// like Go's `filepath.Clean`, and a leading `/` is dropped when more follows it. Errors with
/// the line number of a line too long for Docker's reader.
pub fn read_all(file: &[u8]) -> Result<Vec<Line>, usize> {
    let mut lines = Vec::new();
    let mut rest = file;
    let mut number = 0;
    while !rest.is_empty() {
        let (raw, after) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = after;
        number += 1;
        if raw.len() >= MAX_LINE {
            return Err(number);
        }
        let mut raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if number == 1 {
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        if raw.starts_with(b"#") {
            continue;
        }
        let trimmed = trim_space(raw);
        if trimmed.is_empty() {
            continue;
        }
        let (invert, body) = match trimmed.strip_prefix(b"!") {
            Some(body) => (true, trim_space(body)),
            None => (false, trimmed),
        };
        let mut text = Vec::new();
        if invert {
            text.push(b'!');
        }
        if !body.is_empty() {
            let cleaned = clean(body);
            let cleaned = match cleaned.strip_prefix(b"/") {
                Some(rest) if !rest.is_empty() => rest,
                _ => &cleaned[..],
            };
            text.extend_from_slice(cleaned);
        }
        lines.push(Line { number, text });
    }
    Ok(lines)
}

/// Go's `strings.TrimSpace` on bytes: Unicode white space is trimmed from both ends; a byte
/// that is not UTF-8 stops the trimming, as it does in Go.
pub fn trim_space(text: &[u8]) -> &[u8] {
    let mut start = 0;
    if let Some(chunk) = text.utf8_chunks().next() {
        let valid = chunk.valid();
        start = valid.len() - valid.trim_start().len();
    }
    let text = &text[start..];
    let mut end = text.len();
    if let Some(chunk) = text.utf8_chunks().last() {
        if chunk.invalid().is_empty() {
            let valid = chunk.valid();
            end -= valid.len() - valid.trim_end().len();
        }
    }
    &text[..end]
}

/// Go's `filepath.Clean` on a `/`-separated path of bytes.
pub fn clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path.starts_with(b"/");
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in path.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(&last) if last != b".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(b".."),
            },
            s => parts.push(s),
        }
    }
    let joined = parts.join(&b'/');
    match (rooted, joined.is_empty()) {
        (true, _) => [b"/".as_slice(), &joined].concat(),
        (false, true) => b".".to_vec(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(file: &[u8]) -> Vec<Vec<u8>> {
        read_all(file)
            .unwrap()
            .into_iter()
            .map(|l| l.text)
            .collect()
    }

    #[test]
    fn reads_like_the_docker_cli() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (
                b"test1\n/test2\n/a/file/here\n\nlastfile\n",
                &[b"test1", b"test2", b"a/file/here", b"lastfile"],
            ),
            // comments only where `#` is the first byte
            (b"# c\n  # not a comment\n", &[b"# not a comment"]),
            // `!` is trimmed on both sides, the rest cleaned and its `/` dropped
            (
                b"! /inverted/abs/path\n!\n! \n",
                &[b"!inverted/abs/path", b"!", b"!"],
            ),
            // `/!keep` is cleaned to `!keep`: the matcher then reads it as an exception
            (b"*\n/!keep\n", &[b"*", b"!keep"]),
            // a lone `/` stays
            (b"/\n", &[b"/"]),
            // BOM only on the first line, CRLF endings, a last line without newline
            (
                b"\xEF\xBB\xBFa\r\n\xEF\xBB\xBFb\r\nc",
                &[b"a", b"\xEF\xBB\xBFb", b"c"],
            ),
            (b"\xEF\xBB\xBF# comment\n", &[]),
            // Unicode white space is trimmed; bytes that are not UTF-8 are kept as they are
            (b"\xC2\xA0x\xE2\x80\x83\n", &[b"x"]),
            (b" caf\xE9 \n", &[b"caf\xE9"]),
            (b"\xE9 \n", &[b"\xE9"]),
            // cleaning
            (b"./a/../b//c/\n", &[b"b/c"]),
            (b"a/..\n", &[b"."]),
        ];
        for (file, want) in cases {
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!(texts(file), want, "{:?}", String::from_utf8_lossy(file));
        }
    }

    #[test]
    fn lines_keep_their_numbers() {
        let lines = read_all(b"# c\n\na\n!b\n").unwrap();
        let numbers: Vec<usize> = lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, [3, 4]);
    }

    #[test]
    fn a_line_too_long_for_docker_is_an_error() {
        let mut file = b"ok\n".to_vec();
        file.extend(std::iter::repeat_n(b'a', MAX_LINE));
        assert_eq!(read_all(&file), Err(2));
        let fits = vec![b'a'; MAX_LINE - 1];
        assert_eq!(read_all(&fits).unwrap().len(), 1);
    }

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            (&b""[..], &b"."[..]),
            (b"a/b/", b"a/b"),
            (b"./a", b"a"),
            (b"a/../..", b".."),
            (b"/../a", b"/a"),
            (b"//a//b", b"/a/b"),
            (b"/", b"/"),
            (b"a/./b/../c", b"a/c"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
    }
}
