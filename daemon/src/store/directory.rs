//! Domains, accounts and aliases.
//!
//! Every function takes a transaction, so callers compose them into one
//! atomic change and the writer can batch them. Addresses and domains are
//! expected already normalised by [`crate::address`].

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::mailbox::{create_default_mailboxes, delete_account_mailboxes};
use super::settings::{get_setting, get_setting_for_update, remove_setting, set_setting};
use super::tables::*;
use super::{Result, StoreError};
use crate::address::Address;

/// Setting: primary address of the account that receives postmaster@ and
/// abuse@ mail of every local domain.
const ADMIN_KEY: &str = "admin_account";

/// Allocates the next value of a counter kept in the meta table.
pub(super) fn next_id(tx: &WriteTransaction, counter: &str) -> Result<u64> {
    let mut meta = tx.open_table(META)?;
    let id = meta.get(counter)?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert(counter, id)?;
    Ok(id)
}

// Domains.

pub fn add_domain(tx: &WriteTransaction, name: &str, now: i64) -> Result<()> {
    let mut domains = tx.open_table(DOMAINS)?;
    if domains.get(name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("domain {name}")));
    }
    domains.insert(name, DomainRecord { created: now })?;
    Ok(())
}

/// Removes a domain that no longer has accounts or aliases.
pub fn remove_domain(tx: &WriteTransaction, name: &str) -> Result<()> {
    let suffix = format!("@{name}");
    let accounts = count_with_suffix(&tx.open_table(ACCOUNTS)?, &suffix)?;
    let aliases = count_with_suffix(&tx.open_table(ALIASES)?, &suffix)?;
    if accounts + aliases > 0 {
        return Err(StoreError::Invalid(format!(
            "domain {name} still has {accounts} account(s) and {aliases} alias(es); delete them first"
        )));
    }
    if tx.open_table(DOMAINS)?.remove(name)?.is_none() {
        return Err(StoreError::NotFound(format!("domain {name}")));
    }
    Ok(())
}

fn count_with_suffix<V: redb::Value + 'static>(
    table: &impl ReadableTable<&'static str, V>,
    suffix: &str,
) -> Result<usize> {
    let mut n = 0;
    for row in table.iter()? {
        if row?.0.value().ends_with(suffix) {
            n += 1;
        }
    }
    Ok(n)
}

pub fn list_domains(tx: &ReadTransaction) -> Result<Vec<String>> {
    let table = tx.open_table(DOMAINS)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        out.push(row?.0.value().to_owned());
    }
    Ok(out)
}

pub fn is_local_domain(tx: &ReadTransaction, name: &str) -> Result<bool> {
    Ok(tx.open_table(DOMAINS)?.get(name)?.is_some())
}

// Accounts.

/// Creates an account with its default mailboxes. The first account created
/// becomes the admin account.
pub fn add_account(
    tx: &WriteTransaction,
    addr: &Address,
    password_hash: &str,
    now: i64,
) -> Result<u64> {
    let key = addr.to_string();
    if tx.open_table(DOMAINS)?.get(addr.domain.as_str())?.is_none() {
        return Err(StoreError::Invalid(format!(
            "{} is not a local domain; add it first with `roost domain add {}`",
            addr.domain, addr.domain
        )));
    }
    if tx.open_table(ALIASES)?.get(key.as_str())?.is_some() {
        return Err(StoreError::AlreadyExists(format!("alias {key}")));
    }
    let mut accounts = tx.open_table(ACCOUNTS)?;
    if accounts.get(key.as_str())?.is_some() {
        return Err(StoreError::AlreadyExists(format!("account {key}")));
    }
    let id = next_id(tx, "next_account_id")?;
    let record = AccountRecord {
        id,
        password_hash: password_hash.to_owned(),
        quota: None,
        created: now,
    };
    accounts.insert(key.as_str(), record)?;
    tx.open_table(ACCOUNT_IDS)?.insert(id, key.as_str())?;
    create_default_mailboxes(tx, id, now)?;
    if get_setting_for_update::<String>(tx, ADMIN_KEY)?.is_none() {
        set_setting(tx, ADMIN_KEY, &key)?;
    }
    Ok(id)
}

pub fn set_password(tx: &WriteTransaction, addr: &str, password_hash: &str) -> Result<()> {
    let mut accounts = tx.open_table(ACCOUNTS)?;
    let mut record = accounts
        .get(addr)?
        .map(|r| r.value())
        .ok_or_else(|| StoreError::NotFound(format!("account {addr}")))?;
    record.password_hash = password_hash.to_owned();
    accounts.insert(addr, record)?;
    Ok(())
}

/// Deletes an account with all its mail, and takes it out of every alias.
pub fn remove_account(tx: &WriteTransaction, addr: &str) -> Result<()> {
    let record = tx
        .open_table(ACCOUNTS)?
        .remove(addr)?
        .map(|r| r.value())
        .ok_or_else(|| StoreError::NotFound(format!("account {addr}")))?;
    tx.open_table(ACCOUNT_IDS)?.remove(record.id)?;
    delete_account_mailboxes(tx, record.id)?;

    let mut aliases = tx.open_table(ALIASES)?;
    let mut changed = Vec::new();
    for row in aliases.iter()? {
        let (name, alias) = row?;
        if alias.value().targets.iter().any(|t| t == addr) {
            changed.push((name.value().to_owned(), alias.value()));
        }
    }
    for (name, mut alias) in changed {
        alias.targets.retain(|t| t != addr);
        if alias.targets.is_empty() {
            aliases.remove(name.as_str())?;
        } else {
            aliases.insert(name.as_str(), alias)?;
        }
    }
    if get_setting_for_update::<String>(tx, ADMIN_KEY)?.as_deref() == Some(addr) {
        remove_setting(tx, ADMIN_KEY)?;
    }
    Ok(())
}

pub fn account(tx: &ReadTransaction, addr: &str) -> Result<Option<AccountRecord>> {
    Ok(tx.open_table(ACCOUNTS)?.get(addr)?.map(|r| r.value()))
}

pub fn list_accounts(tx: &ReadTransaction) -> Result<Vec<(String, AccountRecord)>> {
    let table = tx.open_table(ACCOUNTS)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push((k.value().to_owned(), v.value()));
    }
    Ok(out)
}

/// Makes `addr` the account that receives postmaster@ and abuse@.
pub fn set_admin(tx: &WriteTransaction, addr: &str) -> Result<()> {
    if tx.open_table(ACCOUNTS)?.get(addr)?.is_none() {
        return Err(StoreError::NotFound(format!("account {addr}")));
    }
    set_setting(tx, ADMIN_KEY, &addr)
}

pub fn admin_account(tx: &ReadTransaction) -> Result<Option<String>> {
    get_setting(tx, ADMIN_KEY)
}

// Aliases.

/// Adds `target` (a local account) to the alias `addr`, creating it if new.
pub fn add_alias(tx: &WriteTransaction, addr: &Address, target: &str) -> Result<()> {
    let key = addr.to_string();
    if tx.open_table(DOMAINS)?.get(addr.domain.as_str())?.is_none() {
        return Err(StoreError::Invalid(format!(
            "{} is not a local domain",
            addr.domain
        )));
    }
    let accounts = tx.open_table(ACCOUNTS)?;
    if accounts.get(key.as_str())?.is_some() {
        return Err(StoreError::AlreadyExists(format!("account {key}")));
    }
    if accounts.get(target)?.is_none() {
        return Err(StoreError::Invalid(format!(
            "alias target {target} is not a local account"
        )));
    }
    let mut aliases = tx.open_table(ALIASES)?;
    let mut alias = aliases
        .get(key.as_str())?
        .map(|a| a.value())
        .unwrap_or(AliasRecord { targets: vec![] });
    if alias.targets.iter().any(|t| t == target) {
        return Err(StoreError::AlreadyExists(format!(
            "alias {key} -> {target}"
        )));
    }
    alias.targets.push(target.to_owned());
    aliases.insert(key.as_str(), alias)?;
    Ok(())
}

/// Removes one target from an alias, or the whole alias when `target` is None.
pub fn remove_alias(tx: &WriteTransaction, addr: &str, target: Option<&str>) -> Result<()> {
    let mut aliases = tx.open_table(ALIASES)?;
    let mut alias = aliases
        .get(addr)?
        .map(|a| a.value())
        .ok_or_else(|| StoreError::NotFound(format!("alias {addr}")))?;
    if let Some(target) = target {
        let before = alias.targets.len();
        alias.targets.retain(|t| t != target);
        if alias.targets.len() == before {
            return Err(StoreError::NotFound(format!("alias {addr} -> {target}")));
        }
    } else {
        alias.targets.clear();
    }
    if alias.targets.is_empty() {
        aliases.remove(addr)?;
    } else {
        aliases.insert(addr, alias)?;
    }
    Ok(())
}

pub fn alias_targets(tx: &ReadTransaction, addr: &str) -> Result<Option<Vec<String>>> {
    Ok(tx
        .open_table(ALIASES)?
        .get(addr)?
        .map(|a| a.value().targets))
}

pub fn list_aliases(tx: &ReadTransaction) -> Result<Vec<(String, Vec<String>)>> {
    let table = tx.open_table(ALIASES)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push((k.value().to_owned(), v.value().targets));
    }
    Ok(out)
}
