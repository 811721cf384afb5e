//! The boot configuration: what must be known before the database opens.
//!
//! Everything else (domains, accounts, TLS choice, ...) lives in the
//! database and changes at runtime. The file is TOML and optional; every
//! field has a default. Example:
//!
//! ```toml
//! state_dir = "/data/roost"
//! hostname = "mail.example.org"
//! [listen]
//! smtp = ["[::]:25"]
//! submission = ["[::]:587"]
//! submissions = ["[::]:465"]
//! [limits]
//! max_message_size = 52428800
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::smtp::Limits;

/// State directory of the appliance.
pub const DEFAULT_STATE_DIR: &str = "/data/roost";
/// State directory in dev mode, relative to the working directory.
pub const DEV_STATE_DIR: &str = "roost-state";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    /// Directory holding the database and the control socket.
    pub state_dir: Option<PathBuf>,
    /// This server's host name: in greetings, Received headers and the
    /// self-signed certificate. Defaults to the system host name.
    pub hostname: Option<String>,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Addresses per listener; "[::]:port" listens on IPv6 and IPv4 both.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Inbound SMTP (MX), default port 25 (dev: 2525).
    pub smtp: Option<Vec<SocketAddr>>,
    /// Submission with STARTTLS, default 587 (dev: 5870).
    pub submission: Option<Vec<SocketAddr>>,
    /// Submission with implicit TLS, default 465 (dev: 4650).
    pub submissions: Option<Vec<SocketAddr>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest message in bytes (default 50 MiB).
    pub max_message_size: Option<usize>,
    /// Recipients per message (default 100).
    pub max_recipients: Option<usize>,
    /// Simultaneous connections from one IP address (default 20).
    pub connections_per_ip: Option<usize>,
    /// Simultaneous connections in all (default 1000).
    pub max_connections: Option<usize>,
    /// Failed logins from one address within 15 minutes before it is
    /// refused (default 10).
    pub auth_failures_per_ip: Option<usize>,
    /// Seconds to wait for a command or for message content (default 300).
    pub timeout_secs: Option<u64>,
}

/// Where the state lives, chosen the same way by every subcommand:
/// `--state DIR`, else `--dev` (./roost-state), else the config file's
/// `state_dir`, else /data/roost.
pub fn state_dir(state: Option<&Path>, dev: bool, boot: &BootConfig) -> PathBuf {
    if let Some(dir) = state {
        return dir.to_owned();
    }
    if dev {
        return PathBuf::from(DEV_STATE_DIR);
    }
    boot.state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

pub fn load(path: Option<&Path>) -> anyhow::Result<BootConfig> {
    let Some(path) = path else {
        return Ok(BootConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Everything `serve` needs, resolved from the file and the flags.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub hostname: String,
    pub dev: bool,
    pub smtp: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub submissions: Vec<SocketAddr>,
    pub session: Limits,
    pub connections_per_ip: usize,
    pub max_connections: usize,
    pub auth_failures_per_ip: usize,
}

impl ServeConfig {
    pub fn resolve(boot: &BootConfig, dev: bool, hostname: Option<String>) -> anyhow::Result<Self> {
        let hostname = match hostname.or_else(|| boot.hostname.clone()) {
            Some(h) => h,
            None => nix::unistd::gethostname()?
                .into_string()
                .map_err(|_| anyhow::anyhow!("the system host name is not UTF-8"))?,
        };
        let hostname = crate::address::normalise_domain(&hostname)
            .with_context(|| format!("host name {hostname:?}"))?;
        let any = |port: u16| vec![SocketAddr::from(([0u16; 8], port))];
        let (smtp, sub, subs) = if dev {
            (2525, 5870, 4650)
        } else {
            (25, 587, 465)
        };
        let l = &boot.limits;
        let defaults = Limits::default();
        let timeout = l.timeout_secs.map(Duration::from_secs);
        Ok(ServeConfig {
            hostname,
            dev,
            smtp: boot.listen.smtp.clone().unwrap_or_else(|| any(smtp)),
            submission: boot.listen.submission.clone().unwrap_or_else(|| any(sub)),
            submissions: boot.listen.submissions.clone().unwrap_or_else(|| any(subs)),
            session: Limits {
                max_message_size: l.max_message_size.unwrap_or(defaults.max_message_size),
                max_recipients: l.max_recipients.unwrap_or(defaults.max_recipients),
                command_timeout: timeout.unwrap_or(defaults.command_timeout),
                data_timeout: timeout.unwrap_or(defaults.data_timeout),
                ..defaults
            },
            connections_per_ip: l.connections_per_ip.unwrap_or(20),
            max_connections: l.max_connections.unwrap_or(1000),
            auth_failures_per_ip: l.auth_failures_per_ip.unwrap_or(10),
        })
    }
}
