//! Mailboxes and messages.
//!
//! A message row is (mailbox id, UID) -> metadata; its body lives once in
//! `BLOBS`, shared by every mailbox that got the same delivery. Each mailbox
//! keeps its UIDVALIDITY, UIDNEXT, highest MODSEQ and running totals, so
//! IMAP can answer SELECT and STATUS without scanning messages.

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::directory::next_id;
use super::tables::*;
use super::{Result, StoreError};

pub const INBOX: &str = "INBOX";

/// The mailboxes every account starts with (RFC 6154 special use).
const DEFAULT_MAILBOXES: [(&str, Option<&str>); 6] = [
    (INBOX, None),
    ("Drafts", Some("\\Drafts")),
    ("Sent", Some("\\Sent")),
    ("Junk", Some("\\Junk")),
    ("Trash", Some("\\Trash")),
    ("Archive", Some("\\Archive")),
];

pub(super) fn create_default_mailboxes(
    tx: &WriteTransaction,
    account: u64,
    now: i64,
) -> Result<()> {
    for (name, special_use) in DEFAULT_MAILBOXES {
        create_mailbox(tx, account, name, special_use, now)?;
    }
    Ok(())
}

pub fn create_mailbox(
    tx: &WriteTransaction,
    account: u64,
    name: &str,
    special_use: Option<&str>,
    now: i64,
) -> Result<u64> {
    let mut names = tx.open_table(MAILBOX_NAMES)?;
    if names.get((account, name))?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
    }
    let id = next_id(tx, "next_mailbox_id")?;
    let record = MailboxRecord {
        account,
        name: name.to_owned(),
        // RFC 3501 2.3.1.1: UIDVALIDITY must change when a name is reused;
        // time plus the unique id guarantees it without another counter.
        uid_validity: (now as u32).wrapping_add(id as u32),
        uid_next: 1,
        highest_modseq: 1,
        special_use: special_use.map(str::to_owned),
        subscribed: true,
        message_count: 0,
        total_size: 0,
    };
    tx.open_table(MAILBOXES)?.insert(id, record)?;
    names.insert((account, name), id)?;
    Ok(id)
}

/// Where one delivered copy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub mailbox: u64,
    pub uid: u32,
}

/// Stores `body` once and files a copy into `mailbox` of each account.
/// Accounts must be distinct.
pub fn deliver(
    tx: &WriteTransaction,
    accounts: &[u64],
    mailbox: &str,
    body: &[u8],
    internal_date: i64,
) -> Result<Vec<Placed>> {
    let blob = next_id(tx, "next_blob_id")?;
    tx.open_table(BLOBS)?.insert(blob, body)?;
    tx.open_table(BLOB_REFS)?
        .insert(blob, accounts.len() as u32)?;

    let names = tx.open_table(MAILBOX_NAMES)?;
    let mut mailboxes = tx.open_table(MAILBOXES)?;
    let mut messages = tx.open_table(MESSAGES)?;
    let mut placed = Vec::with_capacity(accounts.len());
    for &account in accounts {
        let id = names
            .get((account, mailbox))?
            .map(|v| v.value())
            .ok_or_else(|| {
                StoreError::NotFound(format!("mailbox {mailbox} of account {account}"))
            })?;
        let mut record = mailboxes.get(id)?.expect("named mailbox exists").value();
        let uid = record.uid_next;
        record.uid_next += 1;
        record.highest_modseq += 1;
        record.message_count += 1;
        record.total_size += body.len() as u64;
        let message = MessageRecord {
            blob,
            internal_date,
            size: body.len() as u64,
            flags: 0,
            keywords: Vec::new(),
            modseq: record.highest_modseq,
        };
        messages.insert((id, uid), message)?;
        mailboxes.insert(id, record)?;
        placed.push(Placed { mailbox: id, uid });
    }
    Ok(placed)
}

/// The mailboxes of an account, by name.
pub fn list_mailboxes(tx: &ReadTransaction, account: u64) -> Result<Vec<(u64, MailboxRecord)>> {
    let names = tx.open_table(MAILBOX_NAMES)?;
    let mailboxes = tx.open_table(MAILBOXES)?;
    let mut out = Vec::new();
    for row in names.range((account, "")..(account + 1, ""))? {
        let id = row?.1.value();
        if let Some(record) = mailboxes.get(id)? {
            out.push((id, record.value()));
        }
    }
    Ok(out)
}

pub fn mailbox_id(tx: &ReadTransaction, account: u64, name: &str) -> Result<Option<u64>> {
    Ok(tx
        .open_table(MAILBOX_NAMES)?
        .get((account, name))?
        .map(|v| v.value()))
}

/// Messages of a mailbox in UID order, without their bodies.
pub fn list_messages(tx: &ReadTransaction, mailbox: u64) -> Result<Vec<(u32, MessageRecord)>> {
    let table = tx.open_table(MESSAGES)?;
    let mut out = Vec::new();
    for row in table.range((mailbox, 0)..=(mailbox, u32::MAX))? {
        let (k, v) = row?;
        out.push((k.value().1, v.value()));
    }
    Ok(out)
}

pub fn message(tx: &ReadTransaction, mailbox: u64, uid: u32) -> Result<Option<MessageRecord>> {
    Ok(tx
        .open_table(MESSAGES)?
        .get((mailbox, uid))?
        .map(|v| v.value()))
}

pub fn blob(tx: &ReadTransaction, blob: u64) -> Result<Vec<u8>> {
    tx.open_table(BLOBS)?
        .get(blob)?
        .map(|b| b.value().to_vec())
        .ok_or_else(|| StoreError::NotFound(format!("message body {blob}")))
}

/// Drops one reference to a blob, deleting the body with the last one.
fn release_blob(tx: &WriteTransaction, blob: u64) -> Result<()> {
    let mut refs = tx.open_table(BLOB_REFS)?;
    let left = refs
        .get(blob)?
        .map(|v| v.value())
        .unwrap_or(1)
        .saturating_sub(1);
    if left == 0 {
        refs.remove(blob)?;
        tx.open_table(BLOBS)?.remove(blob)?;
    } else {
        refs.insert(blob, left)?;
    }
    Ok(())
}

pub(super) fn delete_account_mailboxes(tx: &WriteTransaction, account: u64) -> Result<()> {
    let mut names = tx.open_table(MAILBOX_NAMES)?;
    let mut ids = Vec::new();
    for row in names.range((account, "")..(account + 1, ""))? {
        let (k, v) = row?;
        ids.push((k.value().1.to_owned(), v.value()));
    }
    let mut mailboxes = tx.open_table(MAILBOXES)?;
    let mut messages = tx.open_table(MESSAGES)?;
    for (name, id) in ids {
        let mut blobs = Vec::new();
        for row in messages.extract_from_if((id, 0)..=(id, u32::MAX), |_, _| true)? {
            blobs.push(row?.1.value().blob);
        }
        for b in blobs {
            release_blob(tx, b)?;
        }
        mailboxes.remove(id)?;
        names.remove((account, name.as_str()))?;
    }
    Ok(())
}
