//! Receiving message content: DATA (dot-stuffed, RFC 5321 4.1.1.4) and BDAT
//! (RFC 3030 chunks).
//!
//! Against SMTP smuggling, DATA ends only at CRLF "." CRLF. A bare LF or a
//! bare CR anywhere in the content does not end it and is not passed on:
//! the whole message is rejected once its real end arrives (a policy shared
//! by Postfix's `smtpd_forbid_bare_newline = reject`). Roost never
//! normalises such content, because a downstream server might read the same
//! bytes differently. BDAT content is counted, not interpreted, and gets the
//! same bare CR/LF check so the two paths store the same kind of bytes.
//!
//! Both receivers stop keeping bytes past the size limit but keep counting
//! and looking for the end, so the session stays in step with the client.

/// What a receiver found out about the content so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ContentFlaws {
    /// More bytes than the limit arrived; the excess was dropped.
    pub too_big: bool,
    /// A CR not followed by LF, or an LF not preceded by CR.
    pub bare_newline: bool,
}

/// Tracks bare CR/LF across chunk boundaries.
#[derive(Debug, Default, Clone, Copy)]
struct NewlineCheck {
    after_cr: bool,
}

impl NewlineCheck {
    fn scan(&mut self, bytes: &[u8], flaws: &mut ContentFlaws) {
        for &b in bytes {
            match (self.after_cr, b) {
                (true, b'\n') => {}
                (false, b'\n') | (true, _) => flaws.bare_newline = true,
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
    }

    /// At the end of content a trailing lone CR is bare too.
    fn finish(&self, flaws: &mut ContentFlaws) {
        if self.after_cr {
            flaws.bare_newline = true;
        }
    }
}

/// Appends to `message` while keeping it under `limit` bytes.
fn keep(message: &mut Vec<u8>, bytes: &[u8], limit: usize, flaws: &mut ContentFlaws) {
    let room = limit.saturating_sub(message.len());
    if bytes.len() > room {
        flaws.too_big = true;
    }
    message.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// Line state of the DATA receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the start of a line (after CRLF, or at the very start).
    Start,
    /// Saw "." at the start of a line.
    Dot,
    /// Saw "." CR at the start of a line.
    DotCr,
    /// Inside a line.
    Middle,
}

/// Receives dot-stuffed DATA content.
#[derive(Debug)]
pub struct DataReceiver {
    line: Line,
    /// The previous byte was a CR (within the content, not the terminator).
    after_cr: bool,
    newline: NewlineCheck,
    limit: usize,
    pub flaws: ContentFlaws,
}

impl DataReceiver {
    pub fn new(limit: usize) -> Self {
        DataReceiver {
            line: Line::Start,
            after_cr: false,
            newline: NewlineCheck::default(),
            limit,
            flaws: ContentFlaws::default(),
        }
    }

    /// Consumes bytes from `input` into `message`. Returns how many bytes were
    /// consumed and whether the end of data was reached (the rest of `input`
    /// then belongs to the next command).
    pub fn ingest(&mut self, input: &[u8], message: &mut Vec<u8>) -> (usize, bool) {
        let mut start = 0; // first byte of `input` not yet copied
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            i += 1;
            match self.line {
                Line::Start if b == b'.' => {
                    // Copy what came before the dot; the dot itself is stuffing
                    // or the start of the terminator, never content.
                    self.copy(&input[start..i - 1], message);
                    start = i;
                    self.line = Line::Dot;
                }
                Line::Dot if b == b'\r' => self.line = Line::DotCr,
                Line::DotCr if b == b'\n' => {
                    // CRLF "." CRLF: end of data. The CRLF before the dot is
                    // already in the message and ends its last line.
                    self.newline.finish(&mut self.flaws);
                    return (i, true);
                }
                Line::DotCr => {
                    // "." CR followed by something else: a stuffed line
                    // starting with a bare CR. Keep the CR as content.
                    self.copy(b"\r", message);
                    start = i - 1;
                    self.line = self.after_byte(b);
                }
                _ => self.line = self.after_byte(b),
            }
        }
        if self.line != Line::DotCr {
            self.copy(&input[start..], message);
        } else {
            // Hold back the CR after a dot until we know whether LF follows.
            self.copy(&input[start..input.len() - 1], message);
        }
        (input.len(), false)
    }

    fn after_byte(&mut self, b: u8) -> Line {
        let line = if b == b'\n' && self.after_cr {
            Line::Start
        } else {
            Line::Middle
        };
        self.after_cr = b == b'\r';
        line
    }

    fn copy(&mut self, bytes: &[u8], message: &mut Vec<u8>) {
        self.newline.scan(bytes, &mut self.flaws);
        keep(message, bytes, self.limit, &mut self.flaws);
    }
}

/// Receives one BDAT chunk.
#[derive(Debug)]
pub struct BdatReceiver {
    remaining: usize,
    limit: usize,
}

impl BdatReceiver {
    pub fn new(size: usize, limit: usize) -> Self {
        BdatReceiver {
            remaining: size,
            limit,
        }
    }

    /// Like [`DataReceiver::ingest`]; the chunk ends after exactly its size.
    /// `newline` carries the bare-CR/LF state across chunks of one message.
    pub fn ingest(
        &mut self,
        input: &[u8],
        message: &mut Vec<u8>,
        newline: &mut BdatNewlines,
    ) -> (usize, bool) {
        let take = input.len().min(self.remaining);
        let bytes = &input[..take];
        newline.check.scan(bytes, &mut newline.flaws);
        keep(message, bytes, self.limit, &mut newline.flaws);
        self.remaining -= take;
        (take, self.remaining == 0)
    }
}

/// Content checks that span every BDAT chunk of one message.
#[derive(Debug, Default)]
pub struct BdatNewlines {
    check: NewlineCheck,
    pub flaws: ContentFlaws,
}

impl BdatNewlines {
    /// Call after the LAST chunk.
    pub fn finish(&mut self) -> ContentFlaws {
        self.check.finish(&mut self.flaws);
        self.flaws
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split at every possible point and checks each split gives
    /// the same result.
    fn receive(input: &[u8], limit: usize) -> (Vec<u8>, ContentFlaws, usize) {
        let mut results = Vec::new();
        for split in 0..=input.len() {
            let mut r = DataReceiver::new(limit);
            let mut msg = Vec::new();
            let (n1, done1) = r.ingest(&input[..split], &mut msg);
            let consumed = if done1 {
                n1
            } else {
                let (n2, done2) = r.ingest(&input[split..], &mut msg);
                assert!(done2, "no end found in {input:?}");
                n1 + n2
            };
            results.push((msg, r.flaws, consumed));
        }
        for r in &results[1..] {
            assert_eq!(r, &results[0], "split changed the result for {input:?}");
        }
        results.remove(0)
    }

    #[test]
    fn plain_message_and_terminator() {
        let (msg, flaws, n) = receive(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", 1000);
        assert_eq!(msg, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(flaws, ContentFlaws::default());
        assert_eq!(n, 24);
    }

    #[test]
    fn empty_message() {
        let (msg, flaws, n) = receive(b".\r\n", 1000);
        assert!(msg.is_empty());
        assert!(!flaws.bare_newline);
        assert_eq!(n, 3);
    }

    #[test]
    fn dot_stuffing_is_removed() {
        let (msg, _, _) = receive(b"..leading dot\r\n...\r\n.\r\n", 1000);
        assert_eq!(msg, b".leading dot\r\n..\r\n");
    }

    #[test]
    fn smuggling_sequences_do_not_end_data_and_are_rejected() {
        // Each of these would end DATA on a lenient server and let the rest
        // be read as a second, forged transaction.
        for trick in [
            &b"a\n.\nMAIL FROM:<x@y>\r\n"[..],
            b"a\r\n.\nMAIL FROM:<x@y>\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r.\rMAIL FROM:<x@y>\r\n",
            b"a\r\n.\rMAIL FROM:<x@y>\r\n",
        ] {
            let mut input = trick.to_vec();
            input.extend_from_slice(b"\r\n.\r\n");
            let (msg, flaws, n) = receive(&input, 1000);
            assert_eq!(n, input.len(), "ended early on {trick:?}");
            assert!(flaws.bare_newline, "not flagged: {trick:?}");
            assert!(msg.windows(4).any(|w| w == b"MAIL"));
        }
    }

    #[test]
    fn oversize_is_dropped_but_end_still_found() {
        let (msg, flaws, n) = receive(b"0123456789\r\n.\r\nNOOP\r\n", 4);
        assert_eq!(msg, b"0123");
        assert!(flaws.too_big);
        assert_eq!(n, 15);
    }

    #[test]
    fn bdat_chunks_are_exact_and_checked_across_chunks() {
        let mut msg = Vec::new();
        let mut nl = BdatNewlines::default();
        let mut r = BdatReceiver::new(5, 100);
        assert_eq!(r.ingest(b"ab\r", &mut msg, &mut nl), (3, false));
        assert_eq!(r.ingest(b"\ncdRSET", &mut msg, &mut nl), (2, true));
        let mut r = BdatReceiver::new(2, 100);
        assert_eq!(r.ingest(b"x\n", &mut msg, &mut nl), (2, true));
        assert_eq!(msg, b"ab\r\ncx\n");
        assert!(nl.finish().bare_newline);
    }
}
