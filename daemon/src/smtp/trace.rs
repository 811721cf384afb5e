//! Trace headers added on acceptance: Return-Path (RFC 5321 4.4, added at
//! final delivery) and Received (RFC 5321 4.4, RFC 5322 3.6.7).

use std::fmt::Write;
use std::net::IpAddr;

/// What the Received header records about a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceInfo {
    pub helo: String,
    pub peer: IpAddr,
    /// "SMTP", "ESMTP", with "S" for TLS and "A" for authenticated
    /// (RFC 3848).
    pub protocol: &'static str,
    pub id: String,
    /// Named in "for" only when there is exactly one recipient, so a Bcc is
    /// not revealed to the other recipients.
    pub single_recipient: Option<String>,
}

/// The header lines to put in front of a message we accept, given the host
/// name of this server, the envelope sender and an RFC 5322 date.
pub fn headers(info: &TraceInfo, hostname: &str, sender: &str, date: &str) -> String {
    let mut h = String::new();
    let _ = write!(h, "Return-Path: <{sender}>\r\n");
    let helo: String = info
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\'))
        .collect();
    let _ = write!(
        h,
        "Received: from {helo} ([{}])\r\n\tby {hostname} (Roost) with {} id {}",
        info.peer, info.protocol, info.id
    );
    if let Some(rcpt) = &info.single_recipient {
        let _ = write!(h, "\r\n\tfor <{rcpt}>");
    }
    let _ = write!(h, ";\r\n\t{date}\r\n");
    h
}

/// Formats a Unix time as an RFC 5322 date in UTC.
pub fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_219_200),
            "Sat, 21 Nov 2026 00:00:00 +0000"
        );
        assert_eq!(
            rfc5322_date(951_782_400 + 3661),
            "Tue, 29 Feb 2000 01:01:01 +0000"
        );
    }

    #[test]
    fn received_header() {
        let info = TraceInfo {
            helo: "client (evil)\r\nX: y".into(),
            peer: "192.0.2.1".parse().unwrap(),
            protocol: "ESMTPS",
            id: "abc".into(),
            single_recipient: Some("alice@example.test".into()),
        };
        let h = headers(
            &info,
            "mx.example.test",
            "bob@example.org",
            "Thu, 1 Jan 1970 00:00:00 +0000",
        );
        assert_eq!(
            h,
            "Return-Path: <bob@example.org>\r\nReceived: from clientevilX:y ([192.0.2.1])\r\n\tby mx.example.test (Roost) with ESMTPS id abc\r\n\tfor <alice@example.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }
}
