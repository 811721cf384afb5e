//! Runtime settings: small JSON values by key.

use redb::{AccessGuard, ReadTransaction, ReadableTable, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};

use super::tables::SETTINGS;
use super::{Result, StoreError};

pub fn get_setting<T: DeserializeOwned>(tx: &ReadTransaction, key: &str) -> Result<Option<T>> {
    decode(key, tx.open_table(SETTINGS)?.get(key)?)
}

/// Reads a setting inside a write transaction, to change it consistently.
pub fn get_setting_for_update<T: DeserializeOwned>(
    tx: &WriteTransaction,
    key: &str,
) -> Result<Option<T>> {
    decode(key, tx.open_table(SETTINGS)?.get(key)?)
}

pub fn set_setting<T: Serialize>(tx: &WriteTransaction, key: &str, value: &T) -> Result<()> {
    let raw = serde_json::to_vec(value).expect("settings serialise");
    tx.open_table(SETTINGS)?.insert(key, raw.as_slice())?;
    Ok(())
}

pub fn remove_setting(tx: &WriteTransaction, key: &str) -> Result<()> {
    tx.open_table(SETTINGS)?.remove(key)?;
    Ok(())
}

fn decode<T: DeserializeOwned>(
    key: &str,
    raw: Option<AccessGuard<'_, &[u8]>>,
) -> Result<Option<T>> {
    raw.map(|raw| {
        serde_json::from_slice(raw.value())
            .map_err(|e| StoreError::Invalid(format!("setting {key}: {e}")))
    })
    .transpose()
}
