//! The `roost` command line: `serve` runs the daemon; the other subcommands
//! manage it, through its control socket when it runs, or by opening the
//! database themselves when it does not.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};

use roost::config::{self, BootConfig, ServeConfig};
use roost::ctl::{self, Admin, Request, Response};
use roost::server::{self, limits::ConnectionLimiter, Context};
use roost::store::{Store, INBOX};
use roost::tls::Tls;
use roost::{auth, logging};

#[derive(Parser)]
#[command(
    name = "roost",
    version,
    about = "Roost: your own mail server in one process"
)]
struct Cli {
    /// State directory (database, control socket). Default: /data/roost.
    #[arg(long, global = true, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Development mode: state in ./roost-state, dev ports (2525, 5870,
    /// 4650), AUTH allowed without TLS from loopback.
    #[arg(long, global = true)]
    dev: bool,
    /// Boot configuration file (TOML): state_dir, hostname, listen, limits.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server.
    Serve {
        /// Host name for greetings and the self-signed certificate.
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Manage local domains.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage aliases.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Look at stored mail.
    #[command(subcommand)]
    Mail(MailCmd),
    /// Choose the TLS certificate.
    #[command(subcommand)]
    Tls(TlsCmd),
}

#[derive(Subcommand)]
enum DomainCmd {
    /// Add a domain this server receives mail for.
    Add {
        name: String,
    },
    List,
    /// Delete a domain that has no accounts or aliases left.
    Delete {
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an account (its mailboxes are created with it).
    Add {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Make it the admin account (gets postmaster@ and abuse@ mail).
        #[arg(long)]
        admin: bool,
    },
    List,
    /// Change an account's password.
    Password {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account and all its mail.
    Delete {
        address: String,
    },
    /// Make an account the admin account.
    Admin {
        address: String,
    },
}

#[derive(Subcommand)]
enum AliasCmd {
    /// Deliver mail for ADDRESS to the account TARGET (repeat for more).
    Add {
        address: String,
        target: String,
    },
    List,
    /// Delete an alias, or only one of its targets.
    Delete {
        address: String,
        target: Option<String>,
    },
}

#[derive(Subcommand)]
enum MailCmd {
    /// List messages: UID, size, date.
    List {
        address: String,
        #[arg(long, default_value = INBOX)]
        mailbox: String,
    },
    /// Print one message exactly as stored.
    Cat {
        address: String,
        uid: u32,
        #[arg(long, default_value = INBOX)]
        mailbox: String,
    },
}

#[derive(Subcommand)]
enum TlsCmd {
    /// Use this PEM certificate chain and key; changes to the files are
    /// picked up while running.
    UseFiles { cert: PathBuf, key: PathBuf },
    /// Go back to the generated self-signed certificate.
    SelfSigned,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let boot = config::load(cli.config.as_deref())?;
    let state_dir = config::state_dir(cli.state.as_deref(), cli.dev, &boot);
    let request = match cli.command {
        Command::Serve { hostname } => return serve(&state_dir, &boot, cli.dev, hostname).await,
        Command::Domain(cmd) => match cmd {
            DomainCmd::Add { name } => Request::DomainAdd { name },
            DomainCmd::List => Request::DomainList,
            DomainCmd::Delete { name } => Request::DomainDelete { name },
        },
        Command::User(cmd) => match cmd {
            UserCmd::Add {
                address,
                password_stdin,
                admin,
            } => Request::UserAdd {
                password_hash: new_password_hash(password_stdin)?,
                address,
                admin,
            },
            UserCmd::List => Request::UserList,
            UserCmd::Password {
                address,
                password_stdin,
            } => Request::UserPassword {
                password_hash: new_password_hash(password_stdin)?,
                address,
            },
            UserCmd::Delete { address } => Request::UserDelete { address },
            UserCmd::Admin { address } => Request::UserAdmin { address },
        },
        Command::Alias(cmd) => match cmd {
            AliasCmd::Add { address, target } => Request::AliasAdd { address, target },
            AliasCmd::List => Request::AliasList,
            AliasCmd::Delete { address, target } => Request::AliasDelete { address, target },
        },
        Command::Mail(cmd) => match cmd {
            MailCmd::List { address, mailbox } => Request::MailList { address, mailbox },
            MailCmd::Cat {
                address,
                uid,
                mailbox,
            } => Request::MailCat {
                address,
                mailbox,
                uid,
            },
        },
        Command::Tls(cmd) => match cmd {
            TlsCmd::UseFiles { cert, key } => Request::TlsUseFiles {
                cert: absolute(&cert)?,
                key: absolute(&key)?,
            },
            TlsCmd::SelfSigned => Request::TlsSelfSigned,
        },
    };
    match admin_request(&state_dir, request).await? {
        Response::Ok(text) if text.is_empty() => Ok(()),
        Response::Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Response::Bytes(bytes) => Ok(std::io::stdout().write_all(&bytes)?),
        Response::Error(message) => bail!("{message}"),
    }
}

/// Runs a request in the daemon if one runs, else on the database directly.
async fn admin_request(state_dir: &Path, request: Request) -> anyhow::Result<Response> {
    if let Some(response) = ctl::call(state_dir, &request).await? {
        return Ok(response);
    }
    let store = Store::open(state_dir)?;
    Ok(Admin { store, tls: None }.execute(request).await)
}

/// The daemon reads these files later from its own working directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(std::path::absolute(path)?)
}

const MIN_PASSWORD: usize = 8;

fn new_password_hash(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        if first != again {
            bail!("the passwords do not match");
        }
        first
    };
    if password.chars().count() < MIN_PASSWORD {
        bail!("a password needs at least {MIN_PASSWORD} characters");
    }
    Ok(auth::hash_password(&password))
}

async fn serve(
    state_dir: &Path,
    boot: &BootConfig,
    dev: bool,
    hostname: Option<String>,
) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(boot, dev, hostname)?;
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let store = Store::open(state_dir)?;
    let tls = Tls::load(store.clone(), &config.hostname).await?;
    let services = server::bind_smtp(&config)?;
    let control = ctl::bind(state_dir).context("binding the control socket")?;
    tracing::info!(state = %state_dir.display(), hostname = %config.hostname, dev, "roost started");

    let admin = Arc::new(Admin {
        store: store.clone(),
        tls: Some(tls.clone()),
    });
    tokio::spawn(ctl::serve(control, admin));
    tokio::spawn(watch_certificate(tls.clone()));

    let ctx = Arc::new(Context {
        store,
        tls,
        hostname: config.hostname.clone(),
        dev,
        auth_failures: auth::FailureLimiter::new(
            config.auth_failures_per_ip,
            Duration::from_secs(15 * 60),
        ),
        connections: ConnectionLimiter::new(config.connections_per_ip, config.max_connections),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    server::serve(ctx, services, stopped).await;
    let _ = std::fs::remove_file(ctl::socket_path(state_dir));
    Ok(())
}

/// Reloads the certificate on SIGHUP and when its files change.
async fn watch_certificate(tls: Arc<Tls>) {
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = hup.recv() => {}
            _ = tick.tick() => {}
        }
        match tls.reload().await {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "TLS certificate reload failed; keeping the old one")
            }
        }
    }
}
