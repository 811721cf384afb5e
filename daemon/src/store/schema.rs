//! Schema versions and migrations.
//!
//! The version this build writes is one more than the number of migrations.
//! Opening a database runs, in one transaction, every migration from the
//! stored version up to it; a database from a newer roost is refused rather
//! than misread. To change a table's layout: give the changed record a new
//! `NAME` and append a migration to `MIGRATIONS` that rewrites the old rows.

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::tables::*;
use super::{Result, StoreError};

const VERSION_KEY: &str = "schema_version";

/// A step from version `i + 1` to `i + 2` is `MIGRATIONS[i]`; version 1 is
/// the first layout, so there is nothing to run yet.
pub type Migration = fn(&WriteTransaction) -> Result<()>;
pub const MIGRATIONS: &[Migration] = &[];

/// Creates the tables of a new database, or migrates an older one.
pub fn prepare(tx: &WriteTransaction, migrations: &[Migration]) -> Result<()> {
    let target = migrations.len() as u64 + 1;
    let found = tx.open_table(META)?.get(VERSION_KEY)?.map(|v| v.value());
    let Some(mut version) = found else {
        create_tables(tx)?;
        tx.open_table(META)?.insert(VERSION_KEY, target)?;
        return Ok(());
    };
    if version > target {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: target,
        });
    }
    while version < target {
        migrations[(version - 1) as usize](tx)?;
        version += 1;
        tracing::info!(version, "database schema migrated");
    }
    tx.open_table(META)?.insert(VERSION_KEY, version)?;
    Ok(())
}

fn create_tables(tx: &WriteTransaction) -> Result<()> {
    // Opening a table in a write transaction creates it.
    let names = [
        tx.open_table(SETTINGS)?.name().to_owned(),
        tx.open_table(DOMAINS)?.name().to_owned(),
        tx.open_table(ACCOUNTS)?.name().to_owned(),
        tx.open_table(ACCOUNT_IDS)?.name().to_owned(),
        tx.open_table(ALIASES)?.name().to_owned(),
        tx.open_table(MAILBOXES)?.name().to_owned(),
        tx.open_table(MAILBOX_NAMES)?.name().to_owned(),
        tx.open_table(MESSAGES)?.name().to_owned(),
        tx.open_table(BLOBS)?.name().to_owned(),
        tx.open_table(BLOB_REFS)?.name().to_owned(),
    ];
    tracing::debug!(?names, "created tables");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase};

    fn version(db: &Database) -> u64 {
        let tx = db.begin_read().unwrap();
        let t = tx.open_table(META).unwrap();
        t.get(VERSION_KEY).unwrap().unwrap().value()
    }

    fn run(db: &Database, migrations: &[Migration]) -> Result<()> {
        let tx = db.begin_write()?;
        prepare(&tx, migrations)?;
        tx.commit()?;
        Ok(())
    }

    fn add_marker(tx: &WriteTransaction) -> Result<()> {
        tx.open_table(SETTINGS)?
            .insert("migrated", b"yes".as_slice())?;
        Ok(())
    }

    #[test]
    fn new_database_gets_current_version_and_older_one_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        run(&db, &[]).unwrap();
        assert_eq!(version(&db), 1);

        // A build with one more migration upgrades the file on open.
        run(&db, &[add_marker]).unwrap();
        assert_eq!(version(&db), 2);
        let tx = db.begin_read().unwrap();
        let settings = tx.open_table(SETTINGS).unwrap();
        assert_eq!(settings.get("migrated").unwrap().unwrap().value(), b"yes");
    }

    #[test]
    fn newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("t.redb")).unwrap();
        run(&db, &[add_marker, add_marker]).unwrap();
        let err = run(&db, &[]).unwrap_err();
        assert!(matches!(
            err,
            StoreError::NewerSchema {
                found: 3,
                supported: 1
            }
        ));
        assert!(err.to_string().contains("newer than this roost supports"));
    }
}
