//! Table definitions and the records stored in them.
//!
//! Records are serialised with postcard. A change to a record's layout needs
//! a migration in `schema.rs` that rewrites the old rows.

use redb::{TableDefinition, TypeName, Value};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Schema version and id counters.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Runtime settings set by the CLI or the wizard: key to JSON bytes.
pub const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
/// Local domains, by lower-case name.
pub const DOMAINS: TableDefinition<&str, Rec<DomainRecord>> = TableDefinition::new("domains");
/// Accounts, by lower-case primary address.
pub const ACCOUNTS: TableDefinition<&str, Rec<AccountRecord>> = TableDefinition::new("accounts");
/// Account id to primary address.
pub const ACCOUNT_IDS: TableDefinition<u64, &str> = TableDefinition::new("account_ids");
/// Aliases, by lower-case address, to the addresses they deliver to.
pub const ALIASES: TableDefinition<&str, Rec<AliasRecord>> = TableDefinition::new("aliases");
/// Mailboxes by id.
pub const MAILBOXES: TableDefinition<u64, Rec<MailboxRecord>> = TableDefinition::new("mailboxes");
/// (account id, mailbox name) to mailbox id.
pub const MAILBOX_NAMES: TableDefinition<(u64, &str), u64> = TableDefinition::new("mailbox_names");
/// (mailbox id, UID) to the message's metadata. Small rows, so listing a
/// mailbox is a range scan that never touches a body.
pub const MESSAGES: TableDefinition<(u64, u32), Rec<MessageRecord>> =
    TableDefinition::new("messages");
/// Message bodies by blob id, stored once however many mailboxes hold them.
pub const BLOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("blobs");
/// How many messages refer to each blob; the blob goes when this reaches 0.
pub const BLOB_REFS: TableDefinition<u64, u32> = TableDefinition::new("blob_refs");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DomainRecord {
    /// Unix seconds.
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: u64,
    /// PHC string (argon2id).
    pub password_hash: String,
    /// Storage limit in bytes; `None` is unlimited.
    pub quota: Option<u64>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AliasRecord {
    /// Primary addresses of local accounts.
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MailboxRecord {
    pub account: u64,
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    /// RFC 6154 attribute such as `\Sent`.
    pub special_use: Option<String>,
    pub subscribed: bool,
    pub message_count: u32,
    pub total_size: u64,
}

/// System flags as bits; keywords as strings.
pub mod flags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageRecord {
    pub blob: u64,
    /// Unix seconds.
    pub internal_date: i64,
    pub size: u64,
    pub flags: u8,
    pub keywords: Vec<String>,
    pub modseq: u64,
}

/// A postcard-encoded record as a redb value.
#[derive(Debug)]
pub struct Rec<T>(std::marker::PhantomData<T>);

/// A record type with a stable name: redb checks it when a table opens, so
/// renaming a Rust type must not change it.
pub trait Record: Serialize + DeserializeOwned + std::fmt::Debug {
    const NAME: &'static str;
}

macro_rules! record_names {
    ($($t:ident = $name:literal),* $(,)?) => {
        $(impl Record for $t { const NAME: &'static str = $name; })*
    };
}

record_names!(
    DomainRecord = "roost.domain.v1",
    AccountRecord = "roost.account.v1",
    AliasRecord = "roost.alias.v1",
    MailboxRecord = "roost.mailbox.v1",
    MessageRecord = "roost.message.v1",
);

impl<T: Record> Value for Rec<T> {
    type SelfType<'a>
        = T
    where
        Self: 'a;
    type AsBytes<'a>
        = Vec<u8>
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> T
    where
        Self: 'a,
    {
        // Rows are only ever written by `as_bytes` below, under the schema
        // version the migrations guarantee; a row that does not decode means
        // the file was altered behind redb's checksums.
        postcard::from_bytes(data).expect("stored record does not match the schema")
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a T) -> Vec<u8>
    where
        Self: 'b,
    {
        postcard::to_allocvec(value).expect("records always serialise")
    }

    fn type_name() -> TypeName {
        TypeName::new(T::NAME)
    }
}
