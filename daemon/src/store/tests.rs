//! Tests of the store's directory and mailbox operations on a real redb file.

use super::tables::{BLOBS, BLOB_REFS};
use super::*;
use crate::address::Address;
use redb::ReadableTableMetadata;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

async fn setup(store: &Store) -> (u64, u64) {
    store
        .writer()
        .run(|tx| {
            add_domain(tx, "example.test", 0)?;
            let a = add_account(tx, &addr("alice@example.test"), "hash-a", 0)?;
            let b = add_account(tx, &addr("bob@example.test"), "hash-b", 0)?;
            Ok((a, b))
        })
        .await
        .unwrap()
}

fn blob_count(store: &Store) -> (u64, u64) {
    let tx = store.read().unwrap();
    let blobs = tx.open_table(BLOBS).unwrap().len().unwrap();
    let refs = tx.open_table(BLOB_REFS).unwrap().len().unwrap();
    (blobs, refs)
}

#[tokio::test]
async fn accounts_get_default_mailboxes_and_first_is_admin() {
    let (_dir, store) = open();
    let (alice, _) = setup(&store).await;
    let tx = store.read().unwrap();
    let names: Vec<String> = list_mailboxes(&tx, alice)
        .unwrap()
        .into_iter()
        .map(|(_, m)| m.name)
        .collect();
    assert_eq!(
        names,
        ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    );
    assert_eq!(
        admin_account(&tx).unwrap().as_deref(),
        Some("alice@example.test")
    );
    let sent = list_mailboxes(&tx, alice)
        .unwrap()
        .into_iter()
        .find(|(_, m)| m.name == "Sent")
        .unwrap();
    assert_eq!(sent.1.special_use.as_deref(), Some("\\Sent"));
}

#[tokio::test]
async fn directory_rules() {
    let (_dir, store) = open();
    setup(&store).await;
    let w = store.writer();
    let err = w
        .run(|tx| add_account(tx, &addr("carol@other.test"), "h", 0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a local domain"), "{err}");
    let err = w
        .run(|tx| add_account(tx, &addr("alice@example.test"), "h", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)));
    let err = w
        .run(|tx| add_alias(tx, &addr("x@example.test"), "nobody@example.test"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a local account"), "{err}");
    let err = w
        .run(|tx| add_alias(tx, &addr("bob@example.test"), "alice@example.test"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(_)),
        "an alias cannot shadow an account"
    );
    w.run(|tx| add_alias(tx, &addr("team@example.test"), "alice@example.test"))
        .await
        .unwrap();
    w.run(|tx| add_alias(tx, &addr("team@example.test"), "bob@example.test"))
        .await
        .unwrap();
    let tx = store.read().unwrap();
    assert_eq!(
        alias_targets(&tx, "team@example.test").unwrap().unwrap(),
        ["alice@example.test", "bob@example.test"]
    );
    drop(tx);
    // Deleting an account takes it out of aliases and hands admin back.
    w.run(|tx| remove_account(tx, "alice@example.test"))
        .await
        .unwrap();
    let tx = store.read().unwrap();
    assert_eq!(
        alias_targets(&tx, "team@example.test").unwrap().unwrap(),
        ["bob@example.test"]
    );
    assert_eq!(admin_account(&tx).unwrap(), None);
    drop(tx);
    let err = w
        .run(|tx| remove_domain(tx, "example.test"))
        .await
        .unwrap_err();
    assert!(err.is_user_error());
}

#[tokio::test]
async fn one_body_for_many_recipients_and_released_with_the_last() {
    let (_dir, store) = open();
    let (alice, bob) = setup(&store).await;
    let placed = store
        .writer()
        .run(move |tx| deliver(tx, &[alice, bob], INBOX, b"Subject: x\r\n\r\nbody\r\n", 42))
        .await
        .unwrap();
    assert_eq!(placed.len(), 2);
    assert_eq!(blob_count(&store), (1, 1), "one body, one refcount row");
    let second = store
        .writer()
        .run(move |tx| deliver(tx, &[alice], INBOX, b"second", 43))
        .await
        .unwrap();

    let tx = store.read().unwrap();
    let inbox = mailbox_id(&tx, alice, INBOX).unwrap().unwrap();
    let messages = list_messages(&tx, inbox).unwrap();
    assert_eq!(
        messages.iter().map(|(uid, _)| *uid).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(second[0].uid, 2);
    assert!(messages[1].1.modseq > messages[0].1.modseq);
    assert_eq!(
        blob(&tx, messages[0].1.blob).unwrap(),
        b"Subject: x\r\n\r\nbody\r\n"
    );
    let record = list_mailboxes(&tx, alice)
        .unwrap()
        .into_iter()
        .find(|(id, _)| *id == inbox)
        .unwrap()
        .1;
    assert_eq!(
        (record.uid_next, record.message_count, record.total_size),
        (3, 2, 26)
    );
    drop(tx);

    store
        .writer()
        .run(|tx| remove_account(tx, "alice@example.test"))
        .await
        .unwrap();
    assert_eq!(
        blob_count(&store),
        (1, 1),
        "bob still holds the shared body"
    );
    store
        .writer()
        .run(|tx| remove_account(tx, "bob@example.test"))
        .await
        .unwrap();
    assert_eq!(blob_count(&store), (0, 0));
}

#[tokio::test]
async fn a_failing_job_does_not_sink_its_batch() {
    let (_dir, store) = open();
    setup(&store).await;
    // Many concurrent jobs end up in one batch; the bad one fails alone and
    // leaves nothing half-written.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let w = store.writer().clone();
        tasks.push(tokio::spawn(async move {
            w.run(move |tx| {
                add_domain(tx, &format!("d{i}.test"), 0)?;
                if i == 7 {
                    return Err(StoreError::Invalid("boom".into()));
                }
                Ok(())
            })
            .await
        }));
    }
    let mut failed = 0;
    for t in tasks {
        if t.await.unwrap().is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 1);
    let tx = store.read().unwrap();
    let domains = list_domains(&tx).unwrap();
    assert_eq!(domains.len(), 50, "49 new domains plus example.test");
    assert!(!domains.contains(&"d7.test".to_owned()));
}

#[test]
fn second_open_is_refused_clearly() {
    let (dir, _store) = open();
    let err = Store::open(dir.path())
        .err()
        .expect("second open must fail");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
}
