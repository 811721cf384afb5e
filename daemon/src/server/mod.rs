//! `roost serve`: binds the listeners and runs every service in one tokio
//! runtime until shutdown.

pub mod limits;
pub mod smtp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::FailureLimiter;
use crate::config::ServeConfig;
use crate::smtp::{Kind, SessionConfig};
use crate::store::Store;
use crate::tls::Tls;
use limits::ConnectionLimiter;

/// What every connection shares.
pub struct Context {
    pub store: Store,
    pub tls: Arc<Tls>,
    pub hostname: String,
    pub dev: bool,
    pub auth_failures: FailureLimiter,
    pub connections: Arc<ConnectionLimiter>,
}

/// One SMTP service: its listeners and how its sessions behave.
pub struct SmtpService {
    pub listeners: Vec<TcpListener>,
    pub session: Arc<SessionConfig>,
    pub implicit_tls: bool,
}

/// Binds every SMTP listener of the configuration.
pub fn bind_smtp(config: &ServeConfig) -> anyhow::Result<Vec<SmtpService>> {
    let service = |addrs: &[SocketAddr], kind, implicit_tls| -> anyhow::Result<SmtpService> {
        Ok(SmtpService {
            listeners: addrs
                .iter()
                .map(|a| bind(*a))
                .collect::<anyhow::Result<_>>()?,
            session: Arc::new(SessionConfig {
                hostname: config.hostname.clone(),
                kind,
                limits: config.session.clone(),
            }),
            implicit_tls,
        })
    };
    Ok(vec![
        service(&config.smtp, Kind::Inbound, false)?,
        service(&config.submission, Kind::Submission, false)?,
        service(&config.submissions, Kind::Submission, true)?,
    ])
}

/// Binds a TCP listener; an IPv6 wildcard also accepts IPv4, whatever the
/// system's bindv6only default, and falls back to IPv4 alone on a system
/// without IPv6.
pub fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    match bind_exact(addr) {
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() && no_ipv6(&e) => {
            tracing::warn!(%addr, "IPv6 is not available; listening on IPv4 only");
            bind_exact(SocketAddr::from(([0, 0, 0, 0], addr.port())))
        }
        other => other,
    }
}

fn no_ipv6(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .and_then(|e| e.raw_os_error())
        .is_some_and(|code| code == libc::EAFNOSUPPORT || code == libc::EADDRNOTAVAIL)
}

fn bind_exact(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; try --dev)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!("binding {addr}{hint}"))
    })?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into())?)
}

/// Accepts connections on every listener until `shutdown` turns true.
pub async fn serve(
    ctx: Arc<Context>,
    services: Vec<SmtpService>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for service in services {
        for listener in service.listeners {
            let (ctx, session, shutdown) = (ctx.clone(), service.session.clone(), shutdown.clone());
            tasks.spawn(accept_loop(
                ctx,
                listener,
                session,
                service.implicit_tls,
                shutdown,
            ));
        }
    }
    let _ = shutdown.wait_for(|stop| *stop).await;
    tasks.abort_all();
}

async fn accept_loop(
    ctx: Arc<Context>,
    listener: TcpListener,
    session: Arc<SessionConfig>,
    implicit_tls: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, kind = ?session.kind, implicit_tls, "listening");
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (mut socket, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip: IpAddr = addr.ip().to_canonical();
        let Some(permit) = ctx.connections.try_acquire(ip) else {
            tracing::warn!(peer = %ip, "too many connections; refused");
            tokio::spawn(async move {
                let _ = socket
                    .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
                    .await;
            });
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (ctx, session) = (ctx.clone(), session.clone());
        tokio::spawn(async move {
            if let Err(e) = smtp::serve_connection(ctx, session, socket, ip, implicit_tls).await {
                tracing::debug!(peer = %ip, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}
