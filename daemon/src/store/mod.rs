//! The one redb database holding all of Roost's state.
//!
//! Only this module imports redb. Reads open a read transaction directly (redb
//! readers never block the writer or each other); every write goes through
//! the [`Writer`] thread, which batches concurrent writes into one durable
//! commit.
//!
//! Layout (see `tables.rs`): settings, domains, accounts, aliases, mailboxes,
//! per-mailbox message metadata keyed by (mailbox, UID), and bodies in their
//! own table, stored once per delivery and reference-counted.

mod directory;
mod mailbox;
mod schema;
mod settings;
mod tables;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use directory::*;
pub use mailbox::*;
pub use settings::*;
pub use tables::{flags, AccountRecord, MailboxRecord, MessageRecord};
pub use writer::Writer;

use redb::{Database, ReadableDatabase};
/// Transactions, for callers that compose several store functions into one.
pub use redb::{ReadTransaction, WriteTransaction};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "roost.redb";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the disk is full")]
    DiskFull,
    #[error("the database at {0} is in use by another process (is `roost serve` running? its control socket did not answer)")]
    AlreadyOpen(PathBuf),
    #[error("the database has schema version {found}, newer than this roost supports ({supported}); run a newer roost or restore a backup")]
    NewerSchema { found: u64, supported: u64 },
    #[error("the database writer has stopped")]
    Closed,
    #[error("database: {0}")]
    Db(redb::Error),
}

impl StoreError {
    /// Whether the caller did something wrong (as opposed to the server failing).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_) | StoreError::AlreadyExists(_) | StoreError::Invalid(_)
        )
    }
}

fn from_redb(e: redb::Error) -> StoreError {
    if let redb::Error::Io(io) = &e {
        if io.raw_os_error() == Some(libc::ENOSPC) {
            return StoreError::DiskFull;
        }
    }
    StoreError::Db(e)
}

macro_rules! redb_errors {
    ($($t:ty),*) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                from_redb(e.into())
            }
        })*
    };
}
redb_errors!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The open database and its writer thread. Clone it freely.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: Writer,
}

impl Store {
    /// Opens (or creates) the database in `dir`, upgrading an older schema
    /// and refusing a newer one.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Db(redb::Error::Io(e)))?;
        let path = dir.join(DB_FILE);
        let db = Database::builder().create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen(path.clone()),
            other => from_redb(other.into()),
        })?;
        let mut tx = db.begin_write()?;
        tx.set_quick_repair(true);
        schema::prepare(&tx, schema::MIGRATIONS)?;
        tx.commit()?;
        let db = Arc::new(db);
        let writer = Writer::start(db.clone());
        Ok(Store { db, writer })
    }

    /// A consistent snapshot for reading.
    pub fn read(&self) -> Result<ReadTransaction> {
        Ok(self.db.begin_read()?)
    }

    /// The group-commit writer.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }
}

/// Current time in Unix seconds; the store takes time as an argument, this is
/// for the callers at the edge.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
