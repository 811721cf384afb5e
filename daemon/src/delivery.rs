//! Local delivery: which accounts a recipient reaches, and storing an
//! accepted message into their INBOXes in one durable commit.

use crate::address::Address;
use crate::smtp::trace::{headers, rfc5322_date};
use crate::smtp::{Kind, RcptVerdict, Reply, Transaction};
use crate::store::{self, Store, StoreError};

/// Local parts that every local domain has, delivered to the admin account
/// unless an alias or account of that name exists (RFC 5321 4.5.1, RFC 2142).
const ROLE_ADDRESSES: [&str; 2] = ["postmaster", "abuse"];

/// Resolves one RCPT TO address (already normalised by the session).
///
/// Order: the account itself, an alias, the same two without a `+tag`,
/// then postmaster@ and abuse@ to the admin account.
pub fn resolve_recipient(db: &Store, kind: Kind, address: &str) -> RcptVerdict {
    match try_resolve(db, kind, address) {
        Ok(verdict) => verdict,
        Err(e) => {
            tracing::error!(error = %e, address, "recipient lookup failed");
            RcptVerdict::Reject(Reply::new(
                451,
                "4.3.0",
                "Temporary lookup failure, try again later",
            ))
        }
    }
}

fn try_resolve(db: &Store, kind: Kind, address: &str) -> Result<RcptVerdict, StoreError> {
    let tx = db.read()?;
    if address == "postmaster" {
        return admin(&tx);
    }
    let Ok(addr) = Address::parse(address) else {
        return Ok(RcptVerdict::Reject(Reply::new(
            501,
            "5.1.3",
            "Bad recipient address syntax",
        )));
    };
    if !store::is_local_domain(&tx, &addr.domain)? {
        return Ok(RcptVerdict::Reject(match kind {
            Kind::Inbound => Reply::new(554, "5.7.1", "Relay access denied"),
            Kind::Submission => Reply::new(
                451,
                "4.3.2",
                "Delivery to other domains is not enabled on this server yet; message not accepted",
            ),
        }));
    }
    let base = addr.without_subaddress();
    for candidate in std::iter::once(&addr).chain(base.as_ref()) {
        let key = candidate.to_string();
        if let Some(account) = store::account(&tx, &key)? {
            return Ok(RcptVerdict::Accept(vec![account.id]));
        }
        if let Some(targets) = store::alias_targets(&tx, &key)? {
            let mut ids = Vec::new();
            for target in targets {
                if let Some(account) = store::account(&tx, &target)? {
                    ids.push(account.id);
                }
            }
            if !ids.is_empty() {
                return Ok(RcptVerdict::Accept(ids));
            }
        }
    }
    let local = base.as_ref().unwrap_or(&addr).local.as_str();
    if ROLE_ADDRESSES.contains(&local) {
        return admin(&tx);
    }
    Ok(RcptVerdict::Reject(Reply::new(
        550,
        "5.1.1",
        "No such user here",
    )))
}

fn admin(tx: &store::ReadTransaction) -> Result<RcptVerdict, StoreError> {
    let account = match store::admin_account(tx)? {
        Some(addr) => store::account(tx, &addr)?,
        None => None,
    };
    Ok(match account {
        Some(account) => RcptVerdict::Accept(vec![account.id]),
        None => RcptVerdict::Reject(Reply::new(
            451,
            "4.3.0",
            "No administrator account is set up yet",
        )),
    })
}

/// Stores an accepted message with its trace headers into the INBOX of every
/// distinct account its recipients resolved to. Returns once it is on disk.
pub async fn deliver(db: &Store, hostname: &str, txn: Transaction, now: i64) -> Result<(), Reply> {
    let mut message =
        headers(&txn.trace, hostname, &txn.mail_from, &rfc5322_date(now)).into_bytes();
    message.extend_from_slice(&txn.body);
    let mut accounts: Vec<u64> = txn
        .recipients
        .iter()
        .flat_map(|r| r.accounts.iter().copied())
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    let result = db
        .writer()
        .run(move |tx| store::deliver(tx, &accounts, store::INBOX, &message, now))
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(StoreError::DiskFull) => Err(Reply::new(452, "4.3.1", "Insufficient system storage")),
        Err(e) => {
            tracing::error!(error = %e, id = %txn.trace.id, "storing a message failed");
            Err(Reply::new(
                451,
                "4.3.0",
                "Local error in processing, try again later",
            ))
        }
    }
}
