//! Go's regular-expression syntax, as far as Docker's pattern translation can produce it,
//! rewritten for Rust's `regex` so each expression means what it means to Go.
//!
//! Every literal is written as `\x{..}` and every class as explicit ranges, so Rust's extra
//! syntax (nested classes, `&&`, Unicode-aware `\d`) never comes into play. Go's `\d`, `\s`,
//! `\w`, `\b` and POSIX classes are ASCII; Go's `[^...]` also matches a newline, as Rust's
//! does; `.` matches anything but a newline in both. `\p{..}` is the one approximation: Go's
//! general categories and `Any` are taken as Go spells them, a script name when it is
//! capitalised and Rust's Unicode tables know it (Go's tables may be a Unicode version apart).

/// What a Go expression parses to, or why Go rejects it.
pub fn translate(go: &[char]) -> Result<String, String> {
    let mut out = String::new();
    // Start in `out` of the last thing a repetition can apply to.
    let mut last: Option<usize> = None;
    let mut last_was_repeat = false;
    let mut groups: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < go.len() {
        let ch = go[i];
        let was_repeat = std::mem::take(&mut last_was_repeat);
        match ch {
            '*' | '+' | '?' => {
                let Some(start) = last else {
                    return Err(format!("missing argument to repetition operator `{ch}`"));
                };
                if was_repeat {
                    return Err("invalid nested repetition operator".to_string());
                }
                let operand = out.split_off(start);
                out.push_str(&format!("(?:{operand}){ch}"));
                i += 1;
                if go.get(i) == Some(&'?') {
                    out.push('?');
                    i += 1;
                }
                last = Some(start);
                last_was_repeat = true;
                continue;
            }
            '(' => {
                groups.push(out.len());
                out.push_str("(?:");
                last = None;
            }
            ')' => {
                let Some(start) = groups.pop() else {
                    return Err("unexpected `)`".to_string());
                };
                out.push(')');
                last = Some(start);
            }
            '|' => {
                out.push('|');
                last = None;
            }
            '^' | '$' | '.' => {
                last = Some(out.len());
                out.push(ch);
            }
            '[' => {
                let (class, next) = class(go, i)?;
                last = Some(out.len());
                out.push_str(&class);
                i = next;
                continue;
            }
            '\\' => {
                let (next, operand) = escape(go, i, &mut out)?;
                last = operand.or(last);
                i = next;
                continue;
            }
            _ => {
                last = Some(out.len());
                push_char(&mut out, ch);
            }
        }
        i += 1;
    }
    if !groups.is_empty() {
        return Err("missing closing `)`".to_string());
    }
    Ok(out)
}

/// An escape outside a class, starting at the `\` at `i`; returns where the next token starts
/// and where in `out` the last thing it wrote that a repetition applies to begins.
fn escape(go: &[char], i: usize, out: &mut String) -> Result<(usize, Option<usize>), String> {
    let start = out.len();
    let Some(&next) = go.get(i + 1) else {
        return Err("trailing `\\`".to_string());
    };
    match next {
        'A' => out.push_str("\\A"),
        'z' => out.push_str("\\z"),
        'b' => out.push_str("(?-u:\\b)"),
        'B' => out.push_str("(?-u:\\B)"),
        'Q' => {
            let body = &go[i + 2..];
            let end = body.windows(2).position(|w| w == ['\\', 'E']);
            let lit = &body[..end.unwrap_or(body.len())];
            // Each literal is its own operand, as in Go.
            let mut operand = None;
            for &c in lit {
                operand = Some(out.len());
                push_char(out, c);
            }
            return Ok((i + 2 + end.map_or(body.len(), |e| e + 2), operand));
        }
        'p' | 'P' => {
            let (item, next) = unicode_class(go, i)?;
            out.push_str(&format!("[{item}]"));
            return Ok((next, Some(start)));
        }
        'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
            let (ranges, negated) = perl_class(next);
            out.push_str(&render_class(&ranges, &[], negated));
        }
        _ => {
            let (c, next) = escaped_char(go, i)?;
            match c {
                Some(c) => push_char(out, c),
                None => out.push_str(NOTHING),
            }
            return Ok((next, Some(start)));
        }
    }
    Ok((i + 2, Some(start)))
}

/// Go's `parseEscape`: the character an escape stands for (None for a surrogate, which no
/// text can hold) and where the next token starts.
fn escaped_char(go: &[char], i: usize) -> Result<(Option<char>, usize), String> {
    let invalid = || {
        let text: String = go[i..(i + 2).min(go.len())].iter().collect();
        format!("invalid escape sequence `{text}`")
    };
    let Some(&c) = go.get(i + 1) else {
        return Err("trailing `\\`".to_string());
    };
    let mut j = i + 2;
    let value: u32 = match c {
        '1'..='7' if !go.get(j).is_some_and(|d| ('0'..='7').contains(d)) => {
            return Err(invalid());
        }
        '0'..='7' => {
            let mut v = c as u32 - '0' as u32;
            for _ in 1..3 {
                match go.get(j) {
                    Some(d @ '0'..='7') => {
                        v = v * 8 + (*d as u32 - '0' as u32);
                        j += 1;
                    }
                    _ => break,
                }
            }
            v
        }
        'x' => {
            if go.get(j) == Some(&'{') {
                j += 1;
                let mut v: u32 = 0;
                let mut digits = 0;
                loop {
                    match go.get(j) {
                        Some('}') if digits > 0 => break,
                        Some(d) if d.is_ascii_hexdigit() => {
                            v = v * 16 + d.to_digit(16).unwrap_or(0);
                            digits += 1;
                            if v > 0x10FFFF {
                                return Err(invalid());
                            }
                        }
                        _ => return Err(invalid()),
                    }
                    j += 1;
                }
                j += 1;
                v
            } else {
                match (go.get(j), go.get(j + 1)) {
                    (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                        j += 2;
                        a.to_digit(16).unwrap_or(0) * 16 + b.to_digit(16).unwrap_or(0)
                    }
                    _ => return Err(invalid()),
                }
            }
        }
        'a' => 7,
        'f' => 0x0C,
        'n' => 0x0A,
        'r' => 0x0D,
        't' => 0x09,
        'v' => 0x0B,
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => c as u32,
        _ => return Err(invalid()),
    };
    Ok((char::from_u32(value), j))
}

/// An expression that matches nothing.
const NOTHING: &str = "(?:\\z\\A\\x{1}\\x{0})";

/// A `[...]` class starting at `i`, in Go's reading: a `]` or `-` first is literal, `[` is
/// literal inside (no nesting), and `[:name:]`, `\d`-style and `\p` classes may appear.
fn class(go: &[char], i: usize) -> Result<(String, usize), String> {
    const MISSING: &str = "missing closing `]` of a character class";
    let mut j = i + 1;
    let negated = go.get(j) == Some(&'^');
    if negated {
        j += 1;
    }
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut items: Vec<String> = Vec::new();
    let mut first = true;
    loop {
        match go.get(j) {
            None => return Err(MISSING.to_string()),
            Some(']') if !first => break,
            _ => {}
        }
        first = false;
        if go.get(j) == Some(&'[') && go.get(j + 1) == Some(&':') {
            if let Some(end) = go[j + 2..].windows(2).position(|w| w == [':', ']']) {
                let name: String = go[j..j + 2 + end + 2].iter().collect();
                let Some((group, neg)) = posix_class(&name) else {
                    return Err(format!("invalid character class range `{name}`"));
                };
                if neg {
                    ranges.extend(negate(group));
                } else {
                    ranges.extend_from_slice(group);
                }
                j += 2 + end + 2;
                continue;
            }
        }
        if go.get(j) == Some(&'\\') {
            match go.get(j + 1) {
                Some('p' | 'P') => {
                    let (item, next) = unicode_class(go, j)?;
                    items.push(item);
                    j = next;
                    continue;
                }
                Some(&c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                    let (group, neg) = perl_class(c);
                    if neg {
                        ranges.extend(negate(&group));
                    } else {
                        ranges.extend(group);
                    }
                    j += 2;
                    continue;
                }
                _ => {}
            }
        }
        let start = j;
        let (lo, next) = class_char(go, j)?;
        j = next;
        let mut hi = lo;
        if go.get(j) == Some(&'-') && go.get(j + 1).is_some_and(|&c| c != ']') {
            let (h, next) = class_char(go, j + 1)?;
            j = next;
            hi = h;
            if hi < lo {
                let text: String = go[start..j].iter().collect();
                return Err(format!("invalid character class range `{text}`"));
            }
        }
        ranges.push((lo, hi));
    }
    Ok((render_class(&ranges, &items, negated), j + 1))
}

/// One character in a class (Go's `parseClassChar`), as a code point.
fn class_char(go: &[char], j: usize) -> Result<(u32, usize), String> {
    match go.get(j) {
        None => Err("missing closing `]` of a character class".to_string()),
        Some('\\') => {
            let (c, next) = escaped_char(go, j)?;
            // A surrogate escape keeps its value for range checks; no text holds it.
            let value = match c {
                Some(c) => c as u32,
                None => surrogate_value(go, j),
            };
            Ok((value, next))
        }
        Some(&c) => Ok((c as u32, j + 1)),
    }
}

/// The value of a `\x` escape that named a surrogate (for range bounds).
fn surrogate_value(go: &[char], j: usize) -> u32 {
    let digits: String = go[j + 2..]
        .iter()
        .skip_while(|&&c| c == '{')
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    u32::from_str_radix(&digits, 16).unwrap_or(0xD800)
}

/// `\pL`, `\p{Greek}`, `\p{^Greek}`, `\PL` at `j`, as a Rust class item, checked against the
/// names Go knows (general categories and scripts, spelled exactly).
fn unicode_class(go: &[char], j: usize) -> Result<(String, usize), String> {
    let mut negated = go[j + 1] == 'P';
    let (mut name, next): (String, usize) = match go.get(j + 2) {
        None => return Err("invalid character class range `\\p`".to_string()),
        Some('{') => match go[j + 3..].iter().position(|&c| c == '}') {
            Some(end) => (go[j + 3..j + 3 + end].iter().collect(), j + 3 + end + 1),
            None => return Err("invalid character class range: `\\p{` is not closed".to_string()),
        },
        Some(&c) => (c.to_string(), j + 3),
    };
    if let Some(rest) = name.strip_prefix('^') {
        negated = !negated;
        name = rest.to_string();
    }
    let known = name == "Any"
        || GO_CATEGORIES.contains(&name.as_str())
        || (name.len() > 1
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && regex::Regex::new(&format!("\\p{{sc={name}}}")).is_ok());
    if !known {
        return Err(format!("invalid character class range `\\p{{{name}}}`"));
    }
    let name = if name == "Any" || GO_CATEGORIES.contains(&name.as_str()) {
        name
    } else {
        format!("sc={name}")
    };
    let item = if negated {
        format!("\\P{{{name}}}")
    } else {
        format!("\\p{{{name}}}")
    };
    Ok((item, next))
}

/// The Unicode general categories Go's `regexp` accepts after `\p`.
const GO_CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N",
    "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So",
    "Z", "Zl", "Zp", "Zs",
];

const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const SPACE_PERL: &[(u32, u32)] = &[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];

/// Go's `\d`, `\s`, `\w` (ASCII only) and their negations.
fn perl_class(c: char) -> (Vec<(u32, u32)>, bool) {
    let group = match c.to_ascii_lowercase() {
        'd' => DIGIT,
        's' => SPACE_PERL,
        _ => WORD,
    };
    (group.to_vec(), c.is_ascii_uppercase())
}

/// Go's POSIX classes, `[:alpha:]` and `[:^alpha:]`.
fn posix_class(name: &str) -> Option<(&'static [(u32, u32)], bool)> {
    let (neg, bare) = match name.strip_prefix("[:^") {
        Some(rest) => (true, rest),
        None => (false, name.strip_prefix("[:")?),
    };
    let group: &[(u32, u32)] = match bare.strip_suffix(":]")? {
        "alnum" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
        "alpha" => &[(0x41, 0x5A), (0x61, 0x7A)],
        "ascii" => &[(0x00, 0x7F)],
        "blank" => &[(0x09, 0x09), (0x20, 0x20)],
        "cntrl" => &[(0x00, 0x1F), (0x7F, 0x7F)],
        "digit" => DIGIT,
        "graph" => &[(0x21, 0x7E)],
        "lower" => &[(0x61, 0x7A)],
        "print" => &[(0x20, 0x7E)],
        "punct" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        "space" => &[(0x09, 0x0D), (0x20, 0x20)],
        "upper" => &[(0x41, 0x5A)],
        "word" => WORD,
        "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    };
    Some((group, neg))
}

/// The code points outside `ranges` (which are sorted and disjoint).
fn negate(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut next = 0;
    for &(lo, hi) in ranges {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi + 1;
    }
    if next <= 0x10FFFF {
        out.push((next, 0x10FFFF));
    }
    out
}

/// A Rust class of explicit ranges (surrogates cut out, since no text holds them).
fn render_class(ranges: &[(u32, u32)], items: &[String], negated: bool) -> String {
    let mut body = String::new();
    for &(lo, hi) in ranges {
        for (lo, hi) in [(lo, hi.min(0xD7FF)), (lo.max(0xE000), hi)] {
            if lo <= hi {
                body.push_str(&format!("\\x{{{lo:X}}}-\\x{{{hi:X}}}"));
            }
        }
    }
    for item in items {
        body.push_str(item);
    }
    match (body.is_empty(), negated) {
        (true, false) => NOTHING.to_string(),
        (true, true) => "(?s:.)".to_string(),
        (false, false) => format!("[{body}]"),
        (false, true) => format!("[^{body}]"),
    }
}

fn push_char(out: &mut String, c: char) {
    out.push_str(&format!("\\x{{{:X}}}", c as u32));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go_match(go: &str, text: &str) -> Result<bool, String> {
        let chars: Vec<char> = go.chars().collect();
        let rust = translate(&chars)?;
        let re = regex::Regex::new(&rust).map_err(|e| format!("{rust}: {e}"))?;
        Ok(re.is_match(text))
    }

    #[test]
    fn matches_as_go_does() {
        let cases: &[(&str, &str, bool)] = &[
            ("^[^/]*\\.go$", "main.go", true),
            ("^[^/]*\\.go$", "a/main.go", false),
            ("^[^/]$", "é", true),
            ("^[^/]$", "\n", true),
            ("^.$", "\n", false),
            ("^(.*/)?z$", "a/b/z", true),
            ("^(.*/)?z$", "z", true),
            // classes: Go has no nesting and no `!` negation; `[` is literal inside
            ("^[!a]$", "!", true),
            ("^[!a]$", "b", false),
            ("^[^a]$", "b", true),
            ("^[a[b]]$", "[]", true),
            ("^[a[b]]$", "a", false),
            ("^[]a]$", "]", true),
            ("^[a-]$", "-", true),
            ("^[a&&b]$", "&", true),
            ("^[[:alpha:]]$", "q", true),
            ("^[[:^alpha:]]$", "q", false),
            ("^[\\d]$", "٣", false),
            ("^\\d$", "7", true),
            ("^\\s$", "\u{0B}", false),
            ("^[[:space:]]$", "\u{0B}", true),
            ("^\\w$", "é", false),
            ("^[[^/]*]$", "[^]", true),
            ("^[[^/]*]$", "x]", false),
            // escapes
            ("^\\*$", "*", true),
            ("^\\x41$", "A", true),
            ("^\\x{e9}$", "é", true),
            ("^\\101$", "A", true),
            ("^\\0$", "\0", true),
            ("^\\t$", "\t", true),
            ("^\\QA*B$", "A*B$", true),
            ("^\\Qa\\E[^/]*$", "abc", true),
            ("^\\Qab\\E*$", "abbb", true),
            ("^\\Qab\\E*$", "abab", false),
            ("^\\pL$", "é", true),
            ("^\\p{Greek}$", "λ", true),
            ("^\\P{Greek}$", "λ", false),
            ("^[\\p{^Greek}]$", "a", true),
            // anchors
            ("^a^b", "ab", false),
            ("^[^/]*\\$$", "a$", true),
            ("^\\bx$", "x", true),
            // the replacement character Docker puts for a byte that is not UTF-8
            ("^caf\u{FFFD}[^/]*$", "caf\u{FFFD}.txt", true),
            ("^[^/]*?$", "abc", true),
            // Go lets an anchor repeat
            ("^*a$", "ba", true),
        ];
        for (go, text, want) in cases {
            assert_eq!(go_match(go, text), Ok(*want), "{go:?} on {text:?}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for go in [
            "^\\m$",
            "^\\é$",
            "^\\8$",
            "^\\1$",
            "^[z-a]$",
            "^[[:nope:]]$",
            "^[[:alpha:]$",
            "^[\\m]$",
            "^\\x4$",
            "^\\x{110000}$",
            "^\\C$",
            "^\\p{greek}$",
            "^\\p{Nope}$",
            "^a**",
            "*a",
            "^(a",
            "a)",
            "^[a$",
        ] {
            let chars: Vec<char> = go.chars().collect();
            assert!(translate(&chars).is_err(), "{go:?} should be rejected");
        }
    }
}
