//! Showing user-supplied text in messages: values quoted, escaped and cut to a readable length,
//! paths with their control characters escaped, and every error kept on one line.

use std::fmt::Write as _;
use std::path::Path;

/// Characters of a user value shown before it is cut.
pub const VALUE_CHARS: usize = 200;

/// Characters of a path shown before it is cut (paths are longer than values in ordinary use).
pub const PATH_CHARS: usize = 400;

/// Characters of a whole error line before it is cut, a backstop for messages of other crates.
pub const LINE_CHARS: usize = 1000;

/// Appends `c`, escaped if it is a control character (newline, tab, escape sequences …), so that
/// text cannot break a line or drive a terminal.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// `s` with control characters escaped and cut after `max` characters, followed by a note of the
/// full length when cut.
fn escaped(s: &str, max: usize, quote: bool) -> String {
    let total = s.chars().count();
    let mut out = String::with_capacity(s.len().min(4 * max) + 2);
    if quote {
        out.push('"');
    }
    for c in s.chars().take(max) {
        if quote && (c == '"' || c == '\\') {
            out.push('\\');
        }
        push_escaped(&mut out, c);
    }
    if total > max {
        out.push('…');
    }
    if quote {
        out.push('"');
    }
    if total > max {
        let _ = write!(out, " ({total} characters)");
    }
    out
}

/// A user value in double quotes, escaped (quotes, backslashes and control characters), and cut
/// after [`VALUE_CHARS`] characters with a note of its full length.
pub fn quote(s: &str) -> String {
    escaped(s, VALUE_CHARS, true)
}

/// A user value without quotes, escaped and cut like [`quote`] (for text that already delimits it).
pub fn clip(s: &str) -> String {
    escaped(s, VALUE_CHARS, false)
}

/// A path as text: lossy UTF-8, control characters escaped, cut after [`PATH_CHARS`] characters.
pub fn path(p: &Path) -> String {
    escaped(&p.to_string_lossy(), PATH_CHARS, false)
}

/// `s` as one line: control characters (newlines included) escaped, cut after [`LINE_CHARS`]
/// characters with a note of its full length.
pub fn one_line(s: &str) -> String {
    escaped(s, LINE_CHARS, false)
}

/// A message from another crate (a parser, the operating system) with every quoted span longer than
/// [`VALUE_CHARS`] cut, and control characters escaped. Parsers quote the offending value with
/// `"…"`, `'…'` or `` `…` ``; a value of 50 MB otherwise becomes a 50 MB error line.
pub fn clip_quoted(msg: &str) -> String {
    let bytes = msg.as_bytes();
    let mut out = String::with_capacity(msg.len().min(8 * LINE_CHARS));
    let mut i = 0;
    while i < msg.len() {
        // Delimiters and backslashes are ASCII, so byte positions found here are char boundaries.
        let b = bytes[i];
        if matches!(b, b'"' | b'\'' | b'`') {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b {
                if b == b'"' && bytes[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            if j < bytes.len() {
                let inner = &msg[i + 1..j];
                let count = inner.chars().count();
                if count > VALUE_CHARS {
                    out.push(char::from(b));
                    for c in inner.chars().take(VALUE_CHARS) {
                        push_escaped(&mut out, c);
                    }
                    out.push('…');
                    out.push(char::from(b));
                    let _ = write!(out, " ({count} characters)");
                    i = j + 1;
                    continue;
                }
            }
        }
        let c = msg[i..].chars().next().unwrap_or(' ');
        push_escaped(&mut out, c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_escaped_and_cut_with_their_length() {
        assert_eq!(quote("heat"), "\"heat\"");
        assert_eq!(quote("a\"b\\c\nerror: x"), r#""a\"b\\c\nerror: x""#);
        let long = "x".repeat(100_000);
        let q = quote(&long);
        assert!(q.len() < VALUE_CHARS + 40, "{}", q.len());
        assert!(q.ends_with("…\" (100000 characters)"), "{q}");
    }

    #[test]
    fn paths_never_break_a_line() {
        let p = Path::new("/tmp/a\nerror: forged\x1b[31m");
        let shown = path(p);
        assert!(!shown.contains('\n') && !shown.contains('\x1b'), "{shown}");
        assert!(
            shown.contains("\\n") && shown.contains("\\u{1b}"),
            "{shown}"
        );
    }

    #[test]
    fn long_quoted_spans_of_foreign_messages_are_cut() {
        let msg = format!(
            "invalid type: string \"{}\", expected usize",
            "a".repeat(5000)
        );
        let clipped = clip_quoted(&msg);
        assert!(clipped.len() < 400, "{}", clipped.len());
        assert!(
            clipped.ends_with("(5000 characters), expected usize"),
            "{clipped}"
        );
        assert_eq!(clip_quoted("unknown key `x`"), "unknown key `x`");
        assert_eq!(clip_quoted("it's \"short\"\n"), "it's \"short\"\\n");
    }
}
