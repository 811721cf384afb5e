//! Group commit: one thread owns redb's single write transaction.
//!
//! Callers hand it jobs and wait for the answer. The thread takes every job
//! that is waiting, runs them all in one transaction and commits once with
//! `Durability::Immediate`, so N concurrent deliveries cost one fsync instead
//! of N. A job's answer is sent only after that commit returns: an `Ok` from
//! [`Writer::run`] always means "on disk".
//!
//! If a job fails, the batch is aborted and every job in it is run again in a
//! transaction of its own, so one bad job never takes the others down with it
//! and never leaves half its writes behind.

use std::sync::{mpsc, Arc};

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;

use super::StoreError;

/// How many jobs one commit takes at most, so a flood of small writes still
/// answers its first callers soon.
const MAX_BATCH: usize = 256;

trait Job: Send {
    /// Applies the job; may run more than once (a retry after a batch failed).
    fn apply(&mut self, tx: &WriteTransaction) -> Result<(), StoreError>;
    /// Sends the outcome: the stored result after a commit, or the error.
    fn finish(self: Box<Self>, outcome: Result<(), StoreError>);
}

struct TypedJob<T, F> {
    work: F,
    result: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, tx: &WriteTransaction) -> Result<(), StoreError> {
        self.result = Some((self.work)(tx)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<(), StoreError>) {
        let job = *self;
        let answer = outcome.map(|()| job.result.expect("applied before a successful commit"));
        // The caller may have gone away (client disconnected); nothing to do.
        let _ = job.reply.send(answer);
    }
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    pub fn start(db: Arc<Database>) -> Self {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(&db, &queue))
            .expect("spawning the store writer thread");
        Writer { jobs }
    }

    /// Runs `work` inside a write transaction and returns its result once the
    /// transaction is durably committed. `work` may be called more than once
    /// and must only touch the database.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(work)?.await.map_err(|_| StoreError::Closed)?
    }

    fn submit<T, F>(&self, work: F) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = TypedJob {
            work,
            result: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }
}

fn run_writer(db: &Database, queue: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(db, batch);
    }
}

fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Job>>) {
    // On failure, retry one by one below, so only the failing job sees its error.
    if batch.len() > 1 && try_commit(db, &mut batch).is_ok() {
        for job in batch {
            job.finish(Ok(()));
        }
        return;
    }
    for job in batch {
        let mut single = vec![job];
        let outcome = try_commit(db, &mut single);
        let job = single.pop().expect("one job");
        job.finish(outcome);
    }
}

fn try_commit(db: &Database, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let mut tx = db.begin_write()?;
    // Crash recovery then reads two commit slots instead of walking the file.
    tx.set_quick_repair(true);
    for job in batch.iter_mut() {
        if let Err(e) = job.apply(&tx) {
            tx.abort()?;
            return Err(e);
        }
    }
    tx.commit()?;
    Ok(())
}
