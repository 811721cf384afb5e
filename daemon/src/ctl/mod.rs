//! The control socket: how the CLI manages a running daemon.
//!
//! redb lets one process open the database, so while `roost serve` runs the
//! CLI sends it requests over a Unix socket in the state directory (mode
//! 0600, so only the owner may use it). When no daemon answers, the CLI opens
//! the database itself. Both paths run the same [`admin::execute`].
//!
//! Wire format: one JSON [`Request`] per line, one JSON [`Response`] line back.

pub mod admin;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub use admin::Admin;

pub const SOCKET_FILE: &str = "ctl.sock";

/// Longest request line accepted (a certificate path or a password hash is
/// well under this).
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    DomainAdd {
        name: String,
    },
    DomainList,
    DomainDelete {
        name: String,
    },
    /// The CLI hashes the password, so it never crosses the socket.
    UserAdd {
        address: String,
        password_hash: String,
        admin: bool,
    },
    UserList,
    UserPassword {
        address: String,
        password_hash: String,
    },
    UserDelete {
        address: String,
    },
    UserAdmin {
        address: String,
    },
    AliasAdd {
        address: String,
        target: String,
    },
    AliasList,
    AliasDelete {
        address: String,
        target: Option<String>,
    },
    MailList {
        address: String,
        mailbox: String,
    },
    MailCat {
        address: String,
        mailbox: String,
        uid: u32,
    },
    TlsUseFiles {
        cert: PathBuf,
        key: PathBuf,
    },
    TlsSelfSigned,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Response {
    /// Text for the user (may be empty), or raw bytes for `MailCat`.
    Ok(String),
    Bytes(Vec<u8>),
    Error(String),
}

pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

/// Binds the control socket, replacing a stale one left by a crash (the
/// database lock already proves no other daemon uses this state directory).
pub fn bind(state_dir: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(state_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves control requests until the task is dropped.
pub async fn serve(listener: UnixListener, admin: Arc<Admin>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_one(stream, &admin).await {
                tracing::debug!(error = %e, "control connection failed");
            }
        });
    }
}

async fn serve_one(stream: UnixStream, admin: &Admin) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_REQUEST as u64)).lines();
    while let Some(line) = lines.next_line().await? {
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(request) => admin.execute(request).await,
            Err(e) => Response::Error(format!("bad request: {e}")),
        };
        let mut out = serde_json::to_vec(&response).expect("responses serialise");
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}

/// Sends one request to a running daemon. `Ok(None)` when no daemon listens.
pub async fn call(state_dir: &Path, request: &Request) -> anyhow::Result<Option<Response>> {
    let stream = match UnixStream::connect(socket_path(state_dir)).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.shutdown().await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    Ok(Some(serde_json::from_str(&answer)?))
}
