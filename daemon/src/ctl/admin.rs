//! Administrative operations, shared by the control socket and the CLI's
//! direct mode (and later the web admin).

use std::sync::Arc;

use super::{Request, Response};
use crate::address::{normalise_domain, Address};
use crate::store::{self, unix_now, Store, StoreError};
use crate::tls::{self, CertFiles, Tls};

pub struct Admin {
    pub store: Store,
    /// Present in the daemon, to apply certificate changes at once.
    pub tls: Option<Arc<Tls>>,
}

type Outcome = Result<Response, String>;

impl Admin {
    pub async fn execute(&self, request: Request) -> Response {
        match self.run(request).await {
            Ok(response) => response,
            Err(message) => Response::Error(message),
        }
    }

    async fn run(&self, request: Request) -> Outcome {
        use Request::*;
        let now = unix_now();
        match request {
            DomainAdd { name } => {
                let name = normalise_domain(&name).map_err(|e| format!("{name}: {e}"))?;
                self.write(move |tx| store::add_domain(tx, &name, now))
                    .await
            }
            DomainList => self.text(|tx| Ok(store::list_domains(tx)?.join("\n"))),
            DomainDelete { name } => {
                let name = normalise_domain(&name).map_err(|e| format!("{name}: {e}"))?;
                self.write(move |tx| store::remove_domain(tx, &name)).await
            }
            UserAdd {
                address,
                password_hash,
                admin,
            } => {
                let addr = parse(&address)?;
                self.write(move |tx| {
                    store::add_account(tx, &addr, &password_hash, now)?;
                    if admin {
                        store::set_admin(tx, &addr.to_string())?;
                    }
                    Ok(())
                })
                .await
            }
            UserList => self.text(|tx| {
                let admin = store::admin_account(tx)?;
                let lines: Vec<String> = store::list_accounts(tx)?
                    .into_iter()
                    .map(|(addr, _)| {
                        let mark = if admin.as_deref() == Some(addr.as_str()) {
                            " (admin)"
                        } else {
                            ""
                        };
                        format!("{addr}{mark}")
                    })
                    .collect();
                Ok(lines.join("\n"))
            }),
            UserPassword {
                address,
                password_hash,
            } => {
                let addr = parse(&address)?.to_string();
                self.write(move |tx| store::set_password(tx, &addr, &password_hash))
                    .await
            }
            UserDelete { address } => {
                let addr = parse(&address)?.to_string();
                self.write(move |tx| store::remove_account(tx, &addr)).await
            }
            UserAdmin { address } => {
                let addr = parse(&address)?.to_string();
                self.write(move |tx| store::set_admin(tx, &addr)).await
            }
            AliasAdd { address, target } => {
                let addr = parse(&address)?;
                let target = parse(&target)?.to_string();
                self.write(move |tx| store::add_alias(tx, &addr, &target))
                    .await
            }
            AliasList => self.text(|tx| {
                let lines: Vec<String> = store::list_aliases(tx)?
                    .into_iter()
                    .map(|(addr, targets)| format!("{addr} -> {}", targets.join(", ")))
                    .collect();
                Ok(lines.join("\n"))
            }),
            AliasDelete { address, target } => {
                let addr = parse(&address)?.to_string();
                let target = target
                    .map(|t| parse(&t).map(|a| a.to_string()))
                    .transpose()?;
                self.write(move |tx| store::remove_alias(tx, &addr, target.as_deref()))
                    .await
            }
            MailList { address, mailbox } => {
                let addr = parse(&address)?.to_string();
                self.text(|tx| {
                    let id = mailbox_of(tx, &addr, &mailbox)?;
                    let lines: Vec<String> = store::list_messages(tx, id)?
                        .into_iter()
                        .map(|(uid, m)| {
                            format!(
                                "{uid}\t{}\t{}",
                                m.size,
                                crate::smtp::trace::rfc5322_date(m.internal_date)
                            )
                        })
                        .collect();
                    Ok(lines.join("\n"))
                })
            }
            MailCat {
                address,
                mailbox,
                uid,
            } => {
                let addr = parse(&address)?.to_string();
                let tx = self.store.read().map_err(|e| e.to_string())?;
                let id = mailbox_of(&tx, &addr, &mailbox).map_err(|e| e.to_string())?;
                let message = store::message(&tx, id, uid)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no message with UID {uid} in {mailbox}"))?;
                Ok(Response::Bytes(
                    store::blob(&tx, message.blob).map_err(|e| e.to_string())?,
                ))
            }
            TlsUseFiles { cert, key } => {
                let files = CertFiles { cert, key };
                let (c, k) = tls::read_files(&files).map_err(|e| format!("{e:#}"))?;
                tls::certified_key(&c, &k).map_err(|e| format!("{e:#}"))?;
                self.write(move |tx| store::set_setting(tx, tls::FILES_KEY, &files))
                    .await?;
                self.reload_tls().await
            }
            TlsSelfSigned => {
                self.write(|tx| store::remove_setting(tx, tls::FILES_KEY))
                    .await?;
                self.reload_tls().await
            }
        }
    }

    async fn write<F>(&self, mut work: F) -> Outcome
    where
        F: FnMut(&store::WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    {
        self.store
            .writer()
            .run(move |tx| work(tx))
            .await
            .map(|()| Response::Ok(String::new()))
            .map_err(|e| e.to_string())
    }

    fn text(
        &self,
        read: impl FnOnce(&store::ReadTransaction) -> Result<String, StoreError>,
    ) -> Outcome {
        let tx = self.store.read().map_err(|e| e.to_string())?;
        read(&tx).map(Response::Ok).map_err(|e| e.to_string())
    }

    async fn reload_tls(&self) -> Outcome {
        if let Some(tls) = &self.tls {
            tls.reload().await.map_err(|e| format!("{e:#}"))?;
        }
        Ok(Response::Ok(String::new()))
    }
}

fn parse(address: &str) -> Result<Address, String> {
    Address::parse(address).map_err(|e| format!("{address}: {e}"))
}

fn mailbox_of(
    tx: &store::ReadTransaction,
    account: &str,
    mailbox: &str,
) -> Result<u64, StoreError> {
    let record = store::account(tx, account)?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    store::mailbox_id(tx, record.id, mailbox)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}
