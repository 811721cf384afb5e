//! The tokio driver of [`crate::smtp::ServerConn`]: moves bytes between the
//! socket and the session and carries out its events. No protocol decisions
//! are made here.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::Context;
use crate::address::Address;
use crate::auth;
use crate::delivery;
use crate::smtp::sasl::Credentials;
use crate::smtp::{AuthOutcome, Event, Identity, Peer, ServerConn, SessionConfig};
use crate::store;

/// What ended a drive of the session over one stream.
enum Next<S> {
    Done,
    /// The client asked for STARTTLS; the 220 is written.
    StartTls(S),
}

/// Serves one SMTP connection to the end.
pub async fn serve_connection(
    ctx: Arc<Context>,
    config: Arc<SessionConfig>,
    socket: TcpStream,
    ip: IpAddr,
    implicit_tls: bool,
) -> std::io::Result<()> {
    let peer = Peer {
        ip,
        tls: implicit_tls,
        plaintext_auth: ctx.dev && ip.is_loopback(),
        connection_id: rand::random::<u32>() as u64,
    };
    let handshake_timeout = config.limits.command_timeout;
    let acceptor = tokio_rustls::TlsAcceptor::from(ctx.tls.server_config());
    let mut conn = ServerConn::new(config, peer, Instant::now());
    let plain = if implicit_tls {
        socket
    } else {
        match drive(socket, &mut conn, &ctx, ip).await? {
            Next::Done => return Ok(()),
            Next::StartTls(socket) => socket,
        }
    };
    let stream = timeout(handshake_timeout, acceptor.accept(plain)).await??;
    if !implicit_tls {
        conn.handle_tls_established(Instant::now());
    }
    drive(stream, &mut conn, &ctx, ip).await?;
    Ok(())
}

async fn drive<S>(
    mut stream: S,
    conn: &mut ServerConn,
    ctx: &Context,
    ip: IpAddr,
) -> std::io::Result<Next<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::StartTls => {
                    write_out(&mut stream, conn).await?;
                    return Ok(Next::StartTls(stream));
                }
                Event::Authenticate(credentials) => {
                    let outcome = authenticate(ctx, ip, credentials).await;
                    conn.handle_auth(outcome, Instant::now());
                }
                Event::CheckRecipient { address } => {
                    let verdict = delivery::resolve_recipient(&ctx.store, conn.kind(), &address);
                    conn.handle_recipient(verdict, Instant::now());
                }
                Event::Deliver(transaction) => {
                    let result = delivery::deliver(
                        &ctx.store,
                        &ctx.hostname,
                        transaction,
                        store::unix_now(),
                    )
                    .await;
                    conn.handle_delivered(result, Instant::now());
                }
            }
        }
        for outcome in conn.take_outcomes() {
            let s = &outcome.summary;
            tracing::info!(
                id = %s.id, peer = %ip, from = %s.mail_from, to = ?s.recipients, size = s.size,
                outcome = %outcome.reply, "message {}", if outcome.reply.is_positive() { "accepted" } else { "rejected" }
            );
        }
        write_out(&mut stream, conn).await?;
        if conn.is_closed() {
            let _ = stream.shutdown().await;
            return Ok(Next::Done);
        }
        let deadline = tokio::time::Instant::from_std(conn.deadline());
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => conn.handle_timeout(Instant::now()),
            Ok(Ok(0)) => {
                conn.handle_eof();
                return Ok(Next::Done);
            }
            Ok(Ok(n)) => conn.handle_input(&buf[..n], Instant::now()),
            Ok(Err(e)) => {
                conn.handle_eof();
                return Err(e);
            }
        }
    }
}

/// Writes pending replies; a peer that does not read them within the
/// command timeout is dropped.
async fn write_out<S: AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &mut ServerConn,
) -> std::io::Result<()> {
    let out = conn.take_output();
    if out.is_empty() {
        return Ok(());
    }
    let limit = conn.deadline().saturating_duration_since(Instant::now());
    timeout(limit, async {
        stream.write_all(&out).await?;
        stream.flush().await
    })
    .await?
}

/// Checks credentials, throttling addresses with too many failures.
async fn authenticate(ctx: &Context, ip: IpAddr, credentials: Credentials) -> AuthOutcome {
    if ctx.auth_failures.is_blocked(ip, Instant::now()) {
        tracing::warn!(peer = %ip, "authentication refused: too many failures");
        return AuthOutcome::Throttled;
    }
    let account = Address::parse(&credentials.username)
        .ok()
        .map(|a| a.to_string());
    let identity = account
        .as_deref()
        .and_then(|a| lookup_identity(&ctx.store, a));
    let hash = identity
        .as_ref()
        .map(|(_, hash)| hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_owned());
    let password = credentials.password;
    let verified = tokio::task::spawn_blocking(move || auth::verify_password(&hash, &password))
        .await
        .unwrap_or(false);
    match identity {
        Some((identity, _)) if verified => {
            tracing::info!(peer = %ip, account = %identity.account, "authenticated");
            AuthOutcome::Success(identity)
        }
        _ => {
            ctx.auth_failures.record_failure(ip, Instant::now());
            tracing::warn!(peer = %ip, user = %credentials.username, "authentication failed");
            AuthOutcome::Failed
        }
    }
}

/// The account's identity (itself and its aliases) and password hash.
fn lookup_identity(db: &store::Store, account: &str) -> Option<(Identity, String)> {
    let tx = db.read().ok()?;
    let record = store::account(&tx, account).ok()??;
    let mut senders = vec![account.to_owned()];
    for (alias, targets) in store::list_aliases(&tx).ok()? {
        if targets.iter().any(|t| t == account) {
            senders.push(alias);
        }
    }
    let identity = Identity {
        account: account.to_owned(),
        senders,
    };
    Some((identity, record.password_hash))
}
