//! Untrusted text (user names, upstream strings, error messages) made safe for a log line.

/// Escapes control characters (so a value cannot forge log lines or ANSI sequences) and caps
/// the result at `max_chars` characters, marking the cut with `…`.
pub fn sanitize_for_log(input: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars + 8));
    for (count, c) in input.chars().enumerate() {
        if count >= max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sanitize_for_log;

    #[test]
    fn control_characters_are_escaped_and_length_capped() {
        assert_eq!(sanitize_for_log("alice", 64), "alice");
        assert_eq!(
            sanitize_for_log("a\nINFO fake\x1b[31m", 64),
            "a\\nINFO fake\\u{1b}[31m"
        );
        assert_eq!(
            sanitize_for_log(&"x".repeat(100), 10),
            format!("{}…", "x".repeat(10))
        );
    }
}
