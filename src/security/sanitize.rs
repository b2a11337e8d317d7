//! Untrusted text (user names, upstream strings, error messages) made safe for a log line.

/// Escapes control characters (so a value cannot forge log lines or ANSI sequences) and caps
/// the result at `max_chars` characters (escapes included), marking a cut with `…`.
pub fn sanitize_for_log(input: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars + 8));
    let mut count = 0;
    for c in input.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        let len = piece.chars().count();
        if count + len > max_chars {
            out.push('…');
            break;
        }
        count += len;
        out.push_str(&piece);
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
