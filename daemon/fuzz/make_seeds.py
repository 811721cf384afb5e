#!/usr/bin/env python3
"""Writes the seed corpora: real SMTP conversations in each session state.

smtp_session inputs are: one flags byte, four chunk-size bytes, then what the
client sends (see fuzz_targets/smtp_session.rs). smtp_command inputs are one
mode byte and one command line. Run from anywhere; rewrites corpus/*/seed_*.
"""

import base64
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
SUBMISSION, TLS, PLAINTEXT_AUTH, LATE, TIMEOUT, EOF = 1, 2, 4, 8, 16, 32


def b64(s):
    return base64.b64encode(s.encode()).decode()


PLAIN_OK = b64("\0alice@example.test\0secret")
PLAIN_BAD = b64("\0alice@example.test\0wrong")
PLAIN_THROTTLE = b64("\0throttle@example.test\0x")
MSG = (
    "From: Alice <alice@example.test>\r\n"
    "To: bob@example.test\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "Hi Bob.\r\n"
    "..a line starting with a dot\r\n"
)

SESSIONS = {
    "inbound_data": (0, b"\x00\x00\x00\x00",
        "EHLO client.example.org\r\n"
        "MAIL FROM:<bob@example.org> SIZE=120 BODY=8BITMIME\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "RCPT TO:<nobody@example.test>\r\n"
        "DATA\r\n" + MSG + ".\r\n"
        "QUIT\r\n"),
    "inbound_data_bytewise": (0, b"\x01\x02\x03\x05",
        "HELO client.example.org\r\n"
        "MAIL FROM:<>\r\n"
        "RCPT TO:<Postmaster>\r\n"
        "DATA\r\nSubject: bounce\r\n\r\nbody\r\n.\r\n"
        "QUIT\r\n"),
    "inbound_bdat": (0, b"\x10\x07\x00\x00",
        "EHLO client.example.org\r\n"
        "MAIL FROM:<bob@example.org>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "BDAT 8\r\nA: b\r\n\r\n"
        "BDAT 4 LAST\r\nhi\r\n"
        "QUIT\r\n"),
    "inbound_bdat_refused_then_data": (0, b"\x00\x00\x00\x00",
        "EHLO c\r\n"
        "BDAT 6 LAST\r\nQUIT\r\n"
        "MAIL FROM:<bob@example.org>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "BDAT 2\r\nab"
        "DATA\r\n"
        "RSET\r\n"),
    "inbound_pipelined_late": (LATE, b"\x40\x13\x00\x00",
        "EHLO client.example.org\r\n"
        "MAIL FROM:<bob@example.org>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "RCPT TO:<postmaster@example.test>\r\n"
        "RCPT TO:<carol@example.test>\r\n"
        "DATA\r\n" + MSG + ".\r\n"
        "MAIL FROM:<bob@example.org>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "BDAT 5 LAST\r\nx\r\n\r\n"
        "QUIT\r\n"),
    "inbound_smuggling": (0, b"\x00\x00\x00\x00",
        "EHLO c\r\n"
        "MAIL FROM:<bob@example.org>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "DATA\r\n"
        "Subject: x\r\n\r\nhi\n.\nMAIL FROM:<admin@example.test>\r\n"
        "RCPT TO:<bob@example.test>\r\nDATA\r\nforged\r\n.\r\n"
        "NOOP\r\n"),
    "inbound_oversize_timeout": (TIMEOUT, b"\x00\x00\x00\x00",
        "EHLO c\r\n"
        "MAIL FROM:<bob@example.org> SIZE=999999\r\n"
        "MAIL FROM:<bob@example.org>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "DATA\r\n" + ("x" * 78 + "\r\n") * 60 + ".\r\n"
        "MAIL FROM:<bob@example.org>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "DATA\r\npartial\r\n"),
    "inbound_odd_commands": (EOF, b"\x00\x00\x00\x00",
        "MAIL FROM:<a@b.example>\r\n"
        "EHLO c\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "DATA\r\n"
        "NOOP\r\nVRFY alice\r\nHELP\r\nEXPN list\r\nETRN x\r\nLHLO y\r\n"
        "AUTH PLAIN " + PLAIN_OK + "\r\n"
        "FOO\r\n"
        "STARTTLS\r\nEHLO again\r\n"),
    "inbound_parameters_and_utf8": (0, b"\x00\x00\x00\x00",
        "EHLO c\r\n"
        "MAIL FROM:<j\u00f6rg@x.example>\r\n"
        "MAIL FROM:<x@y.example> BODY=BINARYMIME\r\n"
        "MAIL FROM:<x@y.example> REQUIRETLS\r\n"
        "NOOP " + "y" * 300 + "\r\n"
        "MAIL FROM:<j\u00f6rg@x.example> SMTPUTF8\r\n"
        "RCPT TO:<a@@b>\r\n"
        "RCPT TO:<\u00e5sa@b\u00fccher.example>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "RCPT TO:<postmaster>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "DATA\r\nSubject: caf\u00e9\r\n\r\n\u00e9t\u00e9\r\n.\r\n"
        "QUIT\r\n"),
    # The part after STARTTLS arrives as its own chunk, as it would after
    # the handshake (pipelined plaintext after STARTTLS is discarded).
    "submission_starttls_plain": (SUBMISSION, (
        "EHLO laptop\r\n"
        "AUTH PLAIN " + PLAIN_OK + "\r\n"
        "STARTTLS\r\n",
        "EHLO laptop\r\n"
        "MAIL FROM:<alice@example.test>\r\n"
        "AUTH PLAIN " + PLAIN_OK + "\r\n"
        "MAIL FROM:<alice@example.test>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "RCPT TO:<someone@elsewhere.example>\r\n"
        "DATA\r\n" + MSG + ".\r\n"
        "QUIT\r\n")),
    "submission_tls_login": (SUBMISSION | TLS, b"\x0b\x00\x00\x00",
        "EHLO laptop\r\n"
        "AUTH LOGIN\r\n" + b64("alice@example.test") + "\r\n" + b64("secret") + "\r\n"
        "MAIL FROM:<alice+list@example.test>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "BDAT 34 LAST\r\nFrom: info@example.test\r\n\r\nhello\r\n"
        "MAIL FROM:<info@example.test>\r\n"
        "RCPT TO:<alice@example.test>\r\n"
        "DATA\r\nFrom: mallory@evil.example\r\n\r\nspoof\r\n.\r\n"
        "QUIT\r\n"),
    "submission_plaintext_continuations": (SUBMISSION | PLAINTEXT_AUTH, b"\x00\x00\x00\x00",
        "EHLO laptop\r\n"
        "AUTH PLAIN\r\n*\r\n"
        "AUTH PLAIN\r\n" + PLAIN_BAD + "\r\n"
        "AUTH LOGIN " + b64("alice@example.test") + "\r\n!!!\r\n"
        "AUTH CRAM-MD5\r\n"
        "AUTH PLAIN\r\n" + PLAIN_OK + "\r\n"
        "AUTH PLAIN " + PLAIN_OK + "\r\n"
        "MAIL FROM:<bob@example.test>\r\n"
        "MAIL FROM:<alice@example.test> SIZE=100\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "DATA\r\n" + MSG + ".\r\n"),
    "submission_unauthenticated": (SUBMISSION | PLAINTEXT_AUTH, b"\x00\x00\x00\x00",
        "EHLO laptop\r\n"
        "MAIL FROM:<alice@example.test>\r\n"
        "RCPT TO:<bob@example.test>\r\n"
        "DATA\r\n"
        "BDAT 3 LAST\r\nabc"
        "AUTH PLAIN " + PLAIN_THROTTLE + "\r\n"),
}

COMMANDS = [
    "EHLO client.example.org\r\n",
    "HELO [192.0.2.1]\r\n",
    "MAIL FROM:<bob@example.org> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n",
    "MAIL FROM:<>\r\n",
    'MAIL FROM:<"a b"@example.org>\r\n',
    "RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.test\r\n",
    "RCPT TO:<Postmaster>\r\n",
    "RCPT TO:<@relay.example:alice@example.test>\r\n",
    "DATA\r\n",
    "BDAT 1000 LAST\r\n",
    "AUTH PLAIN " + PLAIN_OK + "\r\n",
    "AUTH LOGIN\r\n",
    "STARTTLS\r\n",
    "RSET\r\n",
    "VRFY alice\r\n",
    "NOOP hello\r\n",
    "QUIT\r\n",
]


def main():
    session_dir = HERE / "corpus" / "smtp_session"
    command_dir = HERE / "corpus" / "smtp_command"
    for d in (session_dir, command_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed_*"):
            old.unlink()
    for name, seed in SESSIONS.items():
        if len(seed) == 2:
            # Two chunks: the first as one, then all the rest.
            flags, (first, rest) = seed
            sizes = bytes([len(first.encode()), 0, 0, 0])
            text = first + rest
        else:
            flags, sizes, text = seed
        assert len(sizes) == 4
        (session_dir / f"seed_{name}").write_bytes(bytes([flags]) + sizes + text.encode())
    for i, line in enumerate(COMMANDS):
        (command_dir / f"seed_{i:02}").write_bytes(b"\x00" + line.encode())


if __name__ == "__main__":
    main()
