//! The SMTP server session (RFC 5321) as a state machine without I/O.
//!
//! Call order, for the driver:
//! 1. [`ServerConn::new`] queues the greeting.
//! 2. Write out [`ServerConn::take_output`] whenever it is not empty.
//! 3. Feed bytes read from the peer to [`ServerConn::handle_input`] while
//!    [`ServerConn::wants_input`] says so.
//! 4. After each call, take [`ServerConn::poll_event`]; an event stops the
//!    session until its answer comes back through the matching `handle_*`
//!    method (pipelined input stays buffered meanwhile).
//! 5. Call [`ServerConn::handle_timeout`] when [`ServerConn::deadline`] passes.
//! 6. Stop when [`ServerConn::is_closed`] and the output is written.
//!
//! Time only moves forward and comes in as an argument; the session never
//! reads a clock.
//!
//! Implements: EHLO/HELO, MAIL, RCPT, DATA, BDAT (RFC 3030), RSET, NOOP,
//! QUIT, VRFY (always 252), HELP, STARTTLS (RFC 3207), AUTH PLAIN/LOGIN
//! (RFC 4954) on submission only, PIPELINING (RFC 2920), 8BITMIME, SMTPUTF8
//! (RFC 6531), SIZE (RFC 1870), ENHANCEDSTATUSCODES (RFC 2034).
//! Not implemented: BINARYMIME, DSN, REQUIRETLS, ETRN, EXPN.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::{
    Request, AUTH_LOGIN, AUTH_PLAIN, MAIL_BODY_BINARYMIME, MAIL_REQUIRETLS, MAIL_SMTPUTF8,
};

use super::data::{BdatNewlines, BdatReceiver, ContentFlaws, DataReceiver};
use super::reply::Reply;
use super::sasl::{self, Credentials};
use super::trace::TraceInfo;
use crate::address::Address;

/// Which service a listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Port 25: mail from the world for local recipients, no AUTH.
    Inbound,
    /// Ports 587/465: authenticated users sending as themselves.
    Submission,
}

/// Bounds on everything a peer controls. Defaults follow RFC 5321 4.5.3.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest command line, CRLF included (RFC 5321 4.5.3.1.4 asks for at
    /// least 512; AUTH initial responses and extension parameters need more).
    pub max_line: usize,
    /// Largest message accepted, in bytes, as announced by SIZE.
    pub max_message_size: usize,
    /// Recipients per message (RFC 5321 4.5.3.1.8 asks for at least 100).
    pub max_recipients: usize,
    /// Failed commands before the session is closed.
    pub max_errors: u32,
    /// NOOP, RSET, VRFY and HELP before the session is closed.
    pub max_junk_commands: u32,
    /// Messages per connection.
    pub max_transactions: u32,
    /// Pipelined input kept while the session waits on an event.
    pub max_buffered_input: usize,
    /// Waiting for the next command (RFC 5321 4.5.3.2.7: at least 5 min).
    pub command_timeout: Duration,
    /// Waiting for more message content.
    pub data_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 4096,
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            max_junk_commands: 100,
            max_transactions: 1000,
            max_buffered_input: 64 * 1024,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(300),
        }
    }
}

/// What does not change between sessions of one listener.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub kind: Kind,
    pub limits: Limits,
}

/// Facts about the peer, known when it connects.
#[derive(Debug, Clone)]
pub struct Peer {
    pub ip: IpAddr,
    /// The connection is already TLS (port 465).
    pub tls: bool,
    /// AUTH may run without TLS (dev mode, loopback peer).
    pub plaintext_auth: bool,
    /// Distinguishes this connection's transaction ids.
    pub connection_id: u64,
}

/// An authenticated user and the addresses it may send as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    /// The account's own address and the aliases that deliver to it.
    pub senders: Vec<String>,
}

impl Identity {
    /// The address, or its base without a `+tag`, belongs to the user.
    pub fn may_send_as(&self, addr: &Address) -> bool {
        let owns = |a: &Address| self.senders.contains(&a.to_string());
        owns(addr) || addr.without_subaddress().is_some_and(|base| owns(&base))
    }
}

/// A recipient accepted at RCPT, with the local accounts it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub accounts: Vec<u64>,
}

/// A message ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Envelope sender; empty for the null sender.
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    /// The content as received, without trace headers.
    pub body: Vec<u8>,
    pub trace: TraceInfo,
}

/// Work the session needs from the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Flush the output, then run the TLS handshake and call
    /// [`ServerConn::handle_tls_established`].
    StartTls,
    /// Check credentials; answer with [`ServerConn::handle_auth`].
    Authenticate(Credentials),
    /// Resolve a recipient; answer with [`ServerConn::handle_recipient`].
    /// The address is as the client wrote it, or "postmaster" for the bare
    /// `<postmaster>` of RFC 5321 4.5.1.
    CheckRecipient { address: String },
    /// Store the message durably; answer with [`ServerConn::handle_delivered`].
    Deliver(Transaction),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Success(Identity),
    Failed,
    /// Too many failures from this peer; the session closes.
    Throttled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptVerdict {
    Accept(Vec<u64>),
    Reject(Reply),
}

/// A transaction as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub size: usize,
}

/// How a transaction that reached the end of its content ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub summary: Summary,
    pub reply: Reply,
}

enum State {
    Command,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass {
        username: String,
    },
    Data(DataReceiver),
    Bdat {
        chunk: BdatReceiver,
        last: bool,
        refusal: Option<Reply>,
    },
    Awaiting(Awaiting),
    Closed,
}

enum Awaiting {
    StartTls,
    Auth,
    Recipient(String),
    Delivery(Summary),
}

struct Helo {
    name: String,
    extended: bool,
}

struct Envelope {
    from: String,
    smtputf8: bool,
    recipients: Vec<Recipient>,
    /// Set once the first BDAT arrives; DATA is then refused.
    bdat: Option<BdatNewlines>,
}

pub struct ServerConn {
    config: Arc<SessionConfig>,
    peer: Peer,
    tls: bool,
    input: Vec<u8>,
    /// The rest of an over-long line is being thrown away.
    skipping_line: bool,
    output: Vec<u8>,
    events: VecDeque<Event>,
    state: State,
    helo: Option<Helo>,
    identity: Option<Identity>,
    envelope: Option<Envelope>,
    message: Vec<u8>,
    errors: u32,
    junk: u32,
    transactions: u32,
    deadline: Instant,
    /// Rejected or finished transactions, for the caller's log.
    outcomes: Vec<Outcome>,
}

impl ServerConn {
    pub fn new(config: Arc<SessionConfig>, peer: Peer, now: Instant) -> Self {
        let mut conn = ServerConn {
            tls: peer.tls,
            deadline: now + config.limits.command_timeout,
            config,
            peer,
            input: Vec::new(),
            skipping_line: false,
            output: Vec::new(),
            events: VecDeque::new(),
            state: State::Command,
            helo: None,
            identity: None,
            envelope: None,
            message: Vec::new(),
            errors: 0,
            junk: 0,
            transactions: 0,
            outcomes: Vec::new(),
        };
        let greeting = format!("{} ESMTP Roost", conn.config.hostname);
        conn.send(Reply::bare(220, vec![greeting]));
        conn
    }

    // Getters.

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn kind(&self) -> Kind {
        self.config.kind
    }

    /// Whether the driver should read more input now.
    pub fn wants_input(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::Awaiting(_) => self.input.len() < self.config.limits.max_buffered_input,
            _ => true,
        }
    }

    /// When [`ServerConn::handle_timeout`] must be called.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_ref()
    }

    // Output.

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Transactions that ended (accepted or refused) since the last call.
    pub fn take_outcomes(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.outcomes)
    }

    // Input from the network.

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.is_closed() {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.process(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.deadline || matches!(self.state, State::Closed | State::Awaiting(_)) {
            return;
        }
        let text = format!(
            "{} Timeout waiting for input, closing",
            self.config.hostname
        );
        self.close(Reply::new(421, "4.4.2", text));
    }

    /// The peer went away; nothing half-received is kept.
    pub fn handle_eof(&mut self) {
        self.message.clear();
        self.envelope = None;
        self.state = State::Closed;
    }

    // Answers to events.

    pub fn handle_tls_established(&mut self, now: Instant) {
        // RFC 3207 4.2: forget everything learnt before TLS.
        self.tls = true;
        self.helo = None;
        self.identity = None;
        self.envelope = None;
        self.state = State::Command;
        self.process(now);
    }

    pub fn handle_auth(&mut self, outcome: AuthOutcome, now: Instant) {
        match outcome {
            AuthOutcome::Success(identity) => {
                self.identity = Some(identity);
                self.send(Reply::new(235, "2.7.0", "Authentication successful"));
            }
            AuthOutcome::Failed => {
                self.fail(Reply::new(
                    535,
                    "5.7.8",
                    "Authentication credentials invalid",
                ));
            }
            AuthOutcome::Throttled => {
                self.close(Reply::new(
                    421,
                    "4.7.0",
                    "Too many failed authentications, try again later",
                ));
                return;
            }
        }
        self.resume(now);
    }

    pub fn handle_recipient(&mut self, verdict: RcptVerdict, now: Instant) {
        let State::Awaiting(Awaiting::Recipient(address)) =
            std::mem::replace(&mut self.state, State::Command)
        else {
            return;
        };
        match verdict {
            RcptVerdict::Accept(accounts) => {
                if let Some(env) = self.envelope.as_mut() {
                    env.recipients.push(Recipient { address, accounts });
                }
                self.send(Reply::new(250, "2.1.5", "Recipient OK"));
            }
            RcptVerdict::Reject(reply) => self.fail(reply),
        }
        self.process(now);
    }

    /// `Ok` once the message is durably stored.
    pub fn handle_delivered(&mut self, result: Result<(), Reply>, now: Instant) {
        let State::Awaiting(Awaiting::Delivery(summary)) =
            std::mem::replace(&mut self.state, State::Command)
        else {
            return;
        };
        let reply = match result {
            Ok(()) => Reply::new(250, "2.0.0", format!("Message accepted, id {}", summary.id)),
            Err(reply) => reply,
        };
        self.outcomes.push(Outcome {
            summary,
            reply: reply.clone(),
        });
        self.send(reply);
        self.process(now);
    }

    // Internals.

    fn send(&mut self, reply: Reply) {
        reply.write_to(&mut self.output);
    }

    /// Sends a refusal and counts it; too many close the session.
    fn fail(&mut self, reply: Reply) {
        self.send(reply);
        self.errors += 1;
        if self.errors >= self.config.limits.max_errors {
            self.close(Reply::new(
                421,
                "4.7.0",
                "Too many errors, closing connection",
            ));
        }
    }

    fn close(&mut self, reply: Reply) {
        self.send(reply);
        self.state = State::Closed;
        self.input.clear();
        self.message.clear();
        self.envelope = None;
    }

    fn resume(&mut self, now: Instant) {
        if matches!(self.state, State::Awaiting(_)) {
            self.state = State::Command;
        }
        self.process(now);
    }

    fn wait_for(&mut self, event: Event, awaiting: Awaiting) {
        self.events.push_back(event);
        self.state = State::Awaiting(awaiting);
    }

    fn process(&mut self, now: Instant) {
        loop {
            match &mut self.state {
                State::Closed | State::Awaiting(_) => return,
                State::Data(receiver) => {
                    self.deadline = now + self.config.limits.data_timeout;
                    let (used, done) = receiver.ingest(&self.input, &mut self.message);
                    let flaws = receiver.flaws;
                    self.input.drain(..used);
                    if !done {
                        return;
                    }
                    self.state = State::Command;
                    self.end_of_message(flaws);
                }
                State::Bdat {
                    chunk,
                    last,
                    refusal,
                } => {
                    self.deadline = now + self.config.limits.data_timeout;
                    let (last, refusal) = (*last, refusal.clone());
                    let mut scratch = Vec::new();
                    let (used, done) = match (&refusal, self.envelope.as_mut()) {
                        (None, Some(env)) => {
                            let newlines = env.bdat.get_or_insert_with(BdatNewlines::default);
                            chunk.ingest(&self.input, &mut self.message, newlines)
                        }
                        _ => chunk.ingest(&self.input, &mut scratch, &mut BdatNewlines::default()),
                    };
                    self.input.drain(..used);
                    if !done {
                        return;
                    }
                    self.state = State::Command;
                    self.end_of_chunk(last, refusal);
                }
                _ => {
                    self.deadline = now + self.config.limits.command_timeout;
                    let Some(line) = self.next_line() else {
                        return;
                    };
                    self.handle_line(&line);
                }
            }
        }
    }

    /// Takes the next complete line from the input, enforcing the length limit.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        loop {
            let Some(pos) = self.input.iter().position(|&b| b == b'\n') else {
                if self.input.len() > self.config.limits.max_line {
                    self.input.clear();
                    if !self.skipping_line {
                        self.skipping_line = true;
                        self.fail(Reply::new(500, "5.5.2", "Line too long"));
                    }
                }
                return None;
            };
            let line: Vec<u8> = self.input.drain(..=pos).collect();
            if std::mem::take(&mut self.skipping_line) {
                continue;
            }
            if line.len() > self.config.limits.max_line {
                self.fail(Reply::new(500, "5.5.2", "Line too long"));
                if self.is_closed() {
                    return None;
                }
                continue;
            }
            return Some(line);
        }
    }

    fn handle_line(&mut self, line: &[u8]) {
        let Ok(text) = std::str::from_utf8(line) else {
            self.fail(Reply::new(500, "5.5.2", "Command is not valid UTF-8"));
            return;
        };
        match std::mem::replace(&mut self.state, State::Command) {
            State::AuthPlain => self.auth_plain_response(text),
            State::AuthLoginUser => self.auth_login_user(text),
            State::AuthLoginPass { username } => self.auth_login_pass(username, text),
            _ => self.command(line),
        }
    }

    fn command(&mut self, line: &[u8]) {
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request.into_owned(),
            Err(e) => {
                self.fail(parse_error_reply(e));
                return;
            }
        };
        match request {
            Request::Ehlo { host } => self.helo(host, true),
            Request::Helo { host } => self.helo(host, false),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.reset_transaction();
                self.junk(Reply::new(250, "2.0.0", "OK"));
            }
            Request::Noop { .. } => self.junk(Reply::new(250, "2.0.0", "OK")),
            Request::Vrfy { .. } => self.junk(Reply::new(
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.junk(Reply::new(214, "2.0.0", "See RFC 5321")),
            Request::Quit => self.close(Reply::new(221, "2.0.0", "Bye")),
            Request::Lhlo { .. } => self.fail(Reply::new(500, "5.5.1", "Command not recognized")),
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.fail(Reply::new(502, "5.5.1", "Command not implemented"))
            }
        }
    }

    fn junk(&mut self, reply: Reply) {
        self.send(reply);
        self.junk += 1;
        if self.junk >= self.config.limits.max_junk_commands {
            self.close(Reply::new(
                421,
                "4.7.0",
                "Too many commands, closing connection",
            ));
        }
    }

    fn reset_transaction(&mut self) {
        self.envelope = None;
        self.message.clear();
    }

    fn helo(&mut self, host: String, extended: bool) {
        self.reset_transaction();
        let hostname = self.config.hostname.clone();
        self.helo = Some(Helo {
            name: host,
            extended,
        });
        if !extended {
            self.send(Reply::bare(250, vec![hostname]));
            return;
        }
        let mut lines = vec![
            format!("{hostname} Hello"),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.limits.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if !self.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_allowed() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        self.send(Reply::bare(250, lines));
    }

    fn auth_allowed(&self) -> bool {
        self.config.kind == Kind::Submission && (self.tls || self.peer.plaintext_auth)
    }

    fn starttls(&mut self) {
        if self.tls {
            self.fail(Reply::new(503, "5.5.1", "TLS already active"));
            return;
        }
        self.send(Reply::new(220, "2.0.0", "Ready to start TLS"));
        // Anything pipelined after STARTTLS was sent in clear text and must
        // not be read as if it came over TLS (CVE-2011-0411).
        self.input.clear();
        self.wait_for(Event::StartTls, Awaiting::StartTls);
    }

    fn auth(&mut self, mechanism: u64, initial: String) {
        if self.config.kind != Kind::Submission {
            return self.fail(Reply::new(
                502,
                "5.5.1",
                "AUTH is only offered on the submission ports",
            ));
        }
        if self.helo.is_none() {
            return self.fail(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.identity.is_some() {
            return self.fail(Reply::new(503, "5.5.1", "Already authenticated"));
        }
        if self.envelope.is_some() {
            return self.fail(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ));
        }
        if !self.auth_allowed() {
            return self.fail(Reply::new(
                538,
                "5.7.11",
                "Encryption required for authentication; use STARTTLS",
            ));
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.send(Reply::bare(334, vec![String::new()]));
                self.state = State::AuthPlain;
            }
            AUTH_PLAIN => self.auth_plain_response(&initial),
            AUTH_LOGIN if initial.is_empty() => {
                self.send(Reply::bare(334, vec!["VXNlcm5hbWU6".into()]));
                self.state = State::AuthLoginUser;
            }
            AUTH_LOGIN => self.auth_login_user(&initial),
            _ => self.fail(Reply::new(
                504,
                "5.5.4",
                "Unrecognized authentication mechanism",
            )),
        }
    }

    /// Handles "*" (RFC 4954 4: the client cancels); true if it was that.
    fn auth_cancelled(&mut self, text: &str) -> bool {
        if text.trim_end() == "*" {
            self.fail(Reply::new(501, "5.7.0", "Authentication cancelled"));
            return true;
        }
        false
    }

    fn auth_plain_response(&mut self, text: &str) {
        if self.auth_cancelled(text) {
            return;
        }
        match sasl::parse_plain(text.trim_end()) {
            Ok(credentials) => self.wait_for(Event::Authenticate(credentials), Awaiting::Auth),
            Err(e) => self.fail(Reply::new(
                501,
                "5.5.2",
                format!("Authentication failed: {e}"),
            )),
        }
    }

    fn auth_login_user(&mut self, text: &str) {
        if self.auth_cancelled(text) {
            return;
        }
        match sasl::parse_login_line(text.trim_end()) {
            Ok(username) => {
                self.send(Reply::bare(334, vec!["UGFzc3dvcmQ6".into()]));
                self.state = State::AuthLoginPass { username };
            }
            Err(e) => self.fail(Reply::new(
                501,
                "5.5.2",
                format!("Authentication failed: {e}"),
            )),
        }
    }

    fn auth_login_pass(&mut self, username: String, text: &str) {
        if self.auth_cancelled(text) {
            return;
        }
        match sasl::parse_login_line(text.trim_end()) {
            Ok(password) => self.wait_for(
                Event::Authenticate(Credentials { username, password }),
                Awaiting::Auth,
            ),
            Err(e) => self.fail(Reply::new(
                501,
                "5.5.2",
                format!("Authentication failed: {e}"),
            )),
        }
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            return self.fail(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.envelope.is_some() {
            return self.fail(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        if self.config.kind == Kind::Submission && self.identity.is_none() {
            return self.fail(Reply::new(530, "5.7.0", "Authentication required"));
        }
        if self.transactions >= self.config.limits.max_transactions {
            return self.close(Reply::new(
                421,
                "4.7.0",
                "Too many messages in one connection, closing",
            ));
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return self.fail(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        if from.flags & MAIL_REQUIRETLS != 0 {
            return self.fail(Reply::new(555, "5.5.4", "REQUIRETLS is not supported"));
        }
        if from.size > self.config.limits.max_message_size {
            return self.fail(Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ));
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            return self.fail(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII address requires SMTPUTF8",
            ));
        }
        let address = if from.address.is_empty() {
            String::new()
        } else {
            match Address::parse(&from.address) {
                Ok(a) => a.to_string(),
                Err(e) => {
                    return self.fail(Reply::new(501, "5.1.7", format!("Bad sender address: {e}")))
                }
            }
        };
        if let Some(identity) = &self.identity {
            let owned = Address::parse(&address).is_ok_and(|a| identity.may_send_as(&a));
            if !owned {
                return self.fail(Reply::new(553, "5.7.1", "Sender address is not yours"));
            }
        }
        self.envelope = Some(Envelope {
            from: address,
            smtputf8,
            recipients: Vec::new(),
            bdat: None,
        });
        self.send(Reply::new(250, "2.1.0", "Sender OK"));
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) {
        let Some(env) = &self.envelope else {
            return self.fail(Reply::new(503, "5.5.1", "Need MAIL before RCPT"));
        };
        if env.recipients.len() >= self.config.limits.max_recipients {
            return self.send(Reply::new(452, "4.5.3", "Too many recipients"));
        }
        if !env.smtputf8 && !to.address.is_ascii() {
            return self.fail(Reply::new(
                553,
                "5.6.7",
                "Non-ASCII address requires SMTPUTF8",
            ));
        }
        // smtp-proto turns the domain-less <postmaster> into an empty address.
        let address = if to.address.is_empty() {
            "postmaster".to_owned()
        } else {
            match Address::parse(&to.address) {
                Ok(a) => a.to_string(),
                Err(e) => {
                    return self.fail(Reply::new(
                        501,
                        "5.1.3",
                        format!("Bad recipient address: {e}"),
                    ))
                }
            }
        };
        self.wait_for(
            Event::CheckRecipient {
                address: address.clone(),
            },
            Awaiting::Recipient(address),
        );
    }

    /// Refusal for DATA or BDAT when the transaction cannot take content.
    fn content_refusal(&self) -> Option<Reply> {
        match &self.envelope {
            None => Some(Reply::new(503, "5.5.1", "Need MAIL and RCPT first")),
            Some(env) if env.recipients.is_empty() => {
                Some(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => None,
        }
    }

    fn data(&mut self) {
        if let Some(reply) = self.content_refusal() {
            return self.fail(reply);
        }
        if self.envelope.as_ref().is_some_and(|e| e.bdat.is_some()) {
            return self.fail(Reply::new(503, "5.5.1", "DATA not allowed after BDAT"));
        }
        self.send(Reply::new(
            354,
            "2.0.0",
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        self.message.clear();
        self.state = State::Data(DataReceiver::new(self.config.limits.max_message_size));
    }

    fn bdat(&mut self, size: usize, last: bool) {
        // The chunk follows the command whatever we think of it, so it is
        // always read; a refused one is read and dropped.
        let refusal = self.content_refusal();
        if refusal.is_none() && self.envelope.as_ref().is_some_and(|e| e.bdat.is_none()) {
            self.message.clear();
        }
        self.state = State::Bdat {
            chunk: BdatReceiver::new(size, self.config.limits.max_message_size),
            last,
            refusal,
        };
    }

    fn end_of_chunk(&mut self, last: bool, refusal: Option<Reply>) {
        if let Some(reply) = refusal {
            return self.fail(reply);
        }
        let Some(env) = self.envelope.as_mut() else {
            return;
        };
        let newlines = env.bdat.get_or_insert_with(BdatNewlines::default);
        if newlines.flaws.too_big {
            let flaws = newlines.finish();
            return self.end_of_message(flaws);
        }
        if last {
            let flaws = newlines.finish();
            self.end_of_message(flaws);
        } else {
            let size = self.message.len();
            self.send(Reply::new(250, "2.0.0", format!("{size} octets received")));
        }
    }

    fn end_of_message(&mut self, flaws: ContentFlaws) {
        let Some(env) = self.envelope.take() else {
            return;
        };
        let message = std::mem::take(&mut self.message);
        self.transactions += 1;
        let id = format!("{:x}.{}", self.peer.connection_id, self.transactions);
        let refusal = if flaws.too_big {
            Some(Reply::new(
                552,
                "5.3.4",
                "Message exceeds fixed maximum message size",
            ))
        } else if flaws.bare_newline {
            Some(Reply::new(
                550,
                "5.6.0",
                "Message contains bare CR or LF; lines must end with CRLF",
            ))
        } else if let Some(identity) = &self.identity {
            header_from_refusal(identity, &message)
        } else {
            None
        };
        let summary = Summary {
            id: id.clone(),
            mail_from: env.from.clone(),
            recipients: env.recipients.iter().map(|r| r.address.clone()).collect(),
            size: message.len(),
        };
        if let Some(reply) = refusal {
            self.outcomes.push(Outcome {
                summary,
                reply: reply.clone(),
            });
            return self.fail(reply);
        }
        let single_recipient = match env.recipients.as_slice() {
            [one] => Some(one.address.clone()),
            _ => None,
        };
        let trace = TraceInfo {
            helo: self
                .helo
                .as_ref()
                .map(|h| h.name.clone())
                .unwrap_or_default(),
            peer: self.peer.ip,
            protocol: self.protocol(),
            id,
            single_recipient,
        };
        let transaction = Transaction {
            mail_from: env.from,
            recipients: env.recipients,
            body: message,
            trace,
        };
        self.wait_for(Event::Deliver(transaction), Awaiting::Delivery(summary));
    }

    /// RFC 3848 protocol name for the Received header.
    fn protocol(&self) -> &'static str {
        let extended = self.helo.as_ref().is_some_and(|h| h.extended);
        match (extended, self.tls, self.identity.is_some()) {
            (false, false, _) => "SMTP",
            (false, true, _) => "SMTPS",
            (true, false, false) => "ESMTP",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, true, true) => "ESMTPSA",
        }
    }
}

/// Submission only: every From: address must belong to the user.
fn header_from_refusal(identity: &Identity, message: &[u8]) -> Option<Reply> {
    let parsed = mail_parser::MessageParser::new().parse_headers(message);
    let from = parsed.as_ref().and_then(|m| m.from());
    let Some(from) = from else {
        return Some(Reply::new(550, "5.6.0", "Message has no From: header"));
    };
    let mut count = 0;
    for addr in from.iter() {
        count += 1;
        let owned = addr
            .address()
            .and_then(|a| Address::parse(a).ok())
            .is_some_and(|a| identity.may_send_as(&a));
        if !owned {
            return Some(Reply::new(
                553,
                "5.7.1",
                "From: header address is not yours",
            ));
        }
    }
    (count == 0).then(|| Reply::new(550, "5.6.0", "Message has no From: address"))
}

fn parse_error_reply(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => Reply::new(500, "5.5.1", "Command not recognized"),
        E::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        E::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
        }
        E::UnsupportedParameter { param } => {
            let param: String = param
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(32)
                .collect();
            Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
        }
        _ => Reply::new(500, "5.5.2", "Syntax error"),
    }
}
