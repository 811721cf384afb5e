//! SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 3463).

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code such as "5.1.1"; every reply after EHLO carries
    /// one (RFC 2034), the greeting does not.
    pub status: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (the 220 greeting, EHLO's 250).
    pub fn bare(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status: None,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut text = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let _ = write!(text, "{}{}", self.code, sep);
            if let Some(status) = self.status {
                let _ = write!(text, "{status} ");
            }
            // A reply line must never carry a line break of its own.
            text.extend(line.chars().filter(|c| *c != '\r' && *c != '\n'));
            text.push_str("\r\n");
        }
        out.extend_from_slice(text.as_bytes());
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out);
        f.write_str(String::from_utf8_lossy(&out).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_uses_dashes_and_strips_line_breaks() {
        let r = Reply::bare(250, vec!["a".into(), "b\r\nX".into()]);
        let mut out = Vec::new();
        r.write_to(&mut out);
        assert_eq!(out, b"250-a\r\n250 bX\r\n");
        let mut out = Vec::new();
        Reply::new(550, "5.1.1", "no").write_to(&mut out);
        assert_eq!(out, b"550 5.1.1 no\r\n");
    }
}
