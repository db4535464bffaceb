//! Observe: what one pass of an object reads of AWS, per account and resource family, held in
//! one value that every step of the pass receives. The steps ask the snapshot, never AWS, for
//! what a family holds:
//!
//! - each family is read once per account, on first ask, however many steps ask; asks that
//!   arrive while it is being read wait for that one read;
//! - a step that changes what a family holds forgets it, so the next ask reads again (a step
//!   never decides a write on what another step's write made stale);
//! - a step waiting for AWS to finish something forgets what it saw when it is still waiting,
//!   so its next try reads again.
//!
//! A snapshot lives for one pass, so what it holds is as fresh as a step's own read would be:
//! a write decided on it is decided on a fresh read. Sharing observations across objects and
//! passes changes where a snapshot lives, not the steps that ask it.
//!
//! What many objects read is also [`Shared`] across objects and passes for a bounded age: a
//! model package group's newest versions, which its project reads every poll and its
//! deployments take from that read instead of listing the registry each; an account's roles
//! and an account's networks, one listing each for every environment using the account. A
//! step never writes on what a shared read says alone: where it shows something otherwise than
//! planned (for networks: where the step, run with an EC2 client that refuses every call but a
//! read, finds anything to do), the step reads that resource afresh and decides on that read;
//! a write forgets the shared read.
//!
//! Families with a batched read: an account's roles (with trust, boundary, inline policies and
//! tags), an account's flow logs, an account's networks (its sagekeeper VPCs found by tag, then one describe per
//! resource type filtered by all of them, VPC endpoints included; at Security depth only route
//! tables, security groups and VPC endpoints, the rest from the last complete listing, to check
//! against only), an environment's network
//! and a VPC's endpoints read alone (when a shared listing showed them otherwise than
//! planned), a Studio domain, and a model package group's newest versions. What AWS offers no batch read for (a key and its policy, a bucket's
//! settings, a pipeline, a SageMaker endpoint) is read by the step that ensures it, right
//! before it decides.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::VpcEndpoint;
use aws_sdk_sagemaker::operation::describe_domain::DescribeDomainOutput;
use tokio::sync::OnceCell;

use crate::errors::AwsError;
use crate::flow_logs::AccountFlowLogs;
use crate::iam::AccountRoles;
use crate::network::{AccountNetworks, SeenNetwork};
use crate::registry::Version;
use crate::sessions::{AccountAccess, Session};
use crate::steps::Changes;

/// What one pass has read of AWS so far, by account and resource family.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// An environment's network in an account, by owner uid: `None` when it has no VPC.
    pub(crate) networks: Family<(AccountAccess, String), Option<Arc<SeenNetwork>>>,
    /// A VPC's endpoints as AWS lists them (deleted ones included), by VPC id.
    pub(crate) vpc_endpoints: Family<(AccountAccess, String), Arc<Vec<VpcEndpoint>>>,
    /// A Studio domain by id: `None` when there is none.
    pub(crate) domains: Family<(AccountAccess, String), Option<Arc<DescribeDomainOutput>>>,
    /// A model package group's newest versions, newest first, by group name.
    pub(crate) versions: Family<(AccountAccess, String), Arc<Vec<Version>>>,
    /// An account's roles named by sagekeeper.
    pub(crate) roles: Family<AccountAccess, AccountRoles>,
    /// An account's sagekeeper networks, and whether this pass read them (a listing another
    /// pass read, or one refreshed only in part, is checked against only).
    pub(crate) account_networks: Family<AccountAccess, (Arc<AccountNetworks>, bool)>,
    /// An account's sagekeeper flow logs, and whether this pass read them.
    pub(crate) flow_logs: Family<AccountAccess, (Arc<AccountFlowLogs>, bool)>,
}

impl Snapshot {
    /// How many reads it made and how many asks it answered from them, over every family.
    pub fn reads(&self) -> Reads {
        [
            self.networks.reads(),
            self.vpc_endpoints.reads(),
            self.domains.reads(),
            self.versions.reads(),
            self.roles.reads(),
            self.account_networks.reads(),
            self.flow_logs.reads(),
        ]
        .into_iter()
        .fold(Reads::default(), |all, r| Reads { made: all.made + r.made, asked: all.asked + r.asked })
    }
}

/// What the controller has read of AWS for every object, each kept for at most an age: what
/// objects only read (a step that writes reads in its own pass, never from here).
#[derive(Debug)]
pub struct Shared {
    /// A model package group's newest versions, newest first, by group name: written by the
    /// project's poll, read by its deployments.
    pub(crate) versions: Aged<(AccountAccess, String), Arc<Vec<Version>>>,
    /// An account's roles named by sagekeeper: read by any object's pass, forgotten when one
    /// writes a role there.
    pub(crate) roles: Aged<AccountAccess, AccountRoles>,
    /// An account's sagekeeper networks: read by any object's pass, forgotten when one writes
    /// to a network there.
    pub(crate) networks: Aged<AccountAccess, Arc<AccountNetworks>>,
    /// An account's last complete listing of networks, which a Security-depth pass refreshes
    /// in part (see [`AccountNetworks`]); forgotten with `networks`.
    pub(crate) complete_networks: Aged<AccountAccess, Arc<AccountNetworks>>,
    /// An account's sagekeeper flow logs: read by any object's pass, forgotten when one writes
    /// a flow log or a flow log group there.
    pub(crate) flow_logs: Aged<AccountAccess, Arc<AccountFlowLogs>>,
    /// How many times a pass forgot an account's networks, by account: a complete listing
    /// read across a forget of its account is not kept as the base of refreshes (it may
    /// predate the write). Writes in other accounts do not count: with many objects
    /// converging side by side, some account is always being written to.
    networks_forgotten: Mutex<HashMap<AccountAccess, u64>>,
}

/// How long a complete listing of an account's networks serves as the base of Security-depth
/// refreshes: past that, such a pass reads a complete one (a Full check every few drift
/// intervals reads one anyway).
const COMPLETE_LISTING_AGE: Duration = Duration::from_secs(2 * 3600);

impl Shared {
    /// Registry reads kept for `poll_age`, account listings for `account_age` (the last complete
    /// listing of an account's networks, the base of Security-depth refreshes, for two hours).
    pub fn new(poll_age: Duration, account_age: Duration) -> Self {
        Self {
            versions: Aged::new(poll_age),
            roles: Aged::new(account_age),
            networks: Aged::new(account_age),
            complete_networks: Aged::new(COMPLETE_LISTING_AGE),
            flow_logs: Aged::new(account_age),
            networks_forgotten: Mutex::default(),
        }
    }

    /// Forgets what is known of an account's networks (a pass wrote to one).
    pub(crate) fn forget_networks(&self, account: &AccountAccess) {
        // Under the counters' lock, so no listing is kept between the count and the forget.
        self.forgotten(|counts| {
            *counts.entry(account.clone()).or_default() += 1;
            self.networks.forget(account);
            self.complete_networks.forget(account);
        });
    }

    /// Reads a complete listing of an account's networks with `read` and keeps it as the base
    /// of refreshes, unless a pass forgot networks while it was being read.
    pub(crate) async fn complete_listing<Fut>(
        &self,
        account: &AccountAccess,
        read: Fut,
    ) -> Result<Arc<AccountNetworks>, AwsError>
    where
        Fut: Future<Output = Result<Arc<AccountNetworks>, AwsError>>,
    {
        let count = |counts: &mut HashMap<AccountAccess, u64>| counts.get(account).copied().unwrap_or_default();
        let before = self.forgotten(count);
        let listing = read.await?;
        // Checked and kept under the counters' lock, so no forget comes in between.
        self.forgotten(|counts| {
            if count(counts) == before {
                self.complete_networks.put(account, listing.clone());
            }
        });
        Ok(listing)
    }

    fn forgotten<T>(&self, with: impl FnOnce(&mut HashMap<AccountAccess, u64>) -> T) -> T {
        with(&mut self.networks_forgotten.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Family<K, (V, bool)> {
    /// The value of `key` taken on the first ask from `shared` as [`Family::get_shared`] (a
    /// shared value `accept` refuses is read again), and whether it was read for this pass or is
    /// the shared read of another (a step may only check against it).
    pub(crate) async fn get_marked<F, Fut>(
        &self,
        key: &K,
        shared: &Aged<K, V>,
        accept: impl Fn(&V) -> bool,
        read: F,
    ) -> Result<(V, bool), AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        let cell = self.cell(key);
        let value = cell.get_or_try_init(|| self.take_shared(key, shared, accept, read)).await?;
        Ok(value.clone())
    }
}

/// The key of what `session` reads about `what`.
pub(crate) fn key(session: &Session, what: &str) -> (AccountAccess, String) {
    (session.access.clone(), what.to_owned())
}

/// Reads made and asks answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// Reads sent to AWS.
    pub made: u64,
    /// Asks, answered by a read or from one already made.
    pub asked: u64,
}

/// One resource family: a value per key, read once on first ask.
#[derive(Debug)]
pub(crate) struct Family<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
    reads: Mutex<Reads>,
}

impl<K, V> Default for Family<K, V> {
    fn default() -> Self {
        Self { cells: Mutex::default(), reads: Mutex::default() }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Family<K, V> {
    /// The value of `key`: read with `read` on the first ask, or while every earlier read
    /// failed (a failure is not kept: the next ask tries again).
    pub(crate) async fn get<F, Fut>(&self, key: &K, read: F) -> Result<V, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        let cell = self.cell(key);
        let value = cell
            .get_or_try_init(|| {
                self.count(|r| r.made += 1);
                read()
            })
            .await?;
        Ok(value.clone())
    }

    /// The value of `key` as [`Family::get`], taken on the first ask from `shared` (a read no
    /// older than its age, else one read now and shared); only a read sent to AWS counts as made.
    pub(crate) async fn get_shared<F, Fut>(&self, key: &K, shared: &Aged<K, V>, read: F) -> Result<V, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        let cell = self.cell(key);
        let take = async || Ok::<V, AwsError>(self.take_shared(key, shared, |_| true, read).await?.0);
        let value = cell.get_or_try_init(take).await?;
        Ok(value.clone())
    }

    /// The value of `key` if this pass has it, without asking (no read, no count).
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        self.cells.lock().unwrap_or_else(PoisonError::into_inner).get(key).and_then(|c| c.get().cloned())
    }

    /// Keeps `value` as this pass's answer for `key` (another family's read held it).
    pub(crate) fn put(&self, key: &K, value: V) {
        let cell = Arc::new(OnceCell::new_with(Some(value)));
        self.cells.lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), cell);
    }

    /// `key` from `shared` (read now unless a young enough read is there), and whether this ask
    /// read it; only a read sent to AWS counts as made.
    async fn take_shared<W: Clone, F, Fut>(
        &self,
        key: &K,
        shared: &Aged<K, W>,
        accept: impl Fn(&W) -> bool,
        read: F,
    ) -> Result<(W, bool), AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<W, AwsError>>,
    {
        let (value, made) = shared.get_if(key, accept, read).await?;
        if made {
            self.count(|r| r.made += 1);
        }
        Ok((value, made))
    }

    /// The cell of `key`, counting one ask.
    fn cell(&self, key: &K) -> Arc<OnceCell<V>> {
        self.count(|r| r.asked += 1);
        self.cells.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default().clone()
    }

    /// The value of `key` for a step waiting on AWS: forgotten again unless `settled` says the
    /// wait is over, so the step's next try reads again instead of seeing the same answer.
    pub(crate) async fn waiting<F, Fut>(
        &self,
        key: &K,
        read: F,
        settled: impl FnOnce(&V) -> bool,
    ) -> Result<V, AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        let value = self.get(key, read).await?;
        if !settled(&value) {
            self.forget(key);
        }
        Ok(value)
    }

    /// Runs `write` with a log of its own, moves what it recorded into `changes`, and forgets
    /// `key` when it wrote anything (whatever other steps wrote meanwhile).
    pub(crate) async fn writing<T>(&self, key: &K, changes: &Changes, write: impl AsyncFnOnce(&Changes) -> T) -> T {
        let ours = Changes::default();
        let result = write(&ours).await;
        if changes.absorb(ours) {
            self.forget(key);
        }
        result
    }

    /// Forgets `key`: the next ask reads it again.
    pub(crate) fn forget(&self, key: &K) {
        self.cells.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    fn count(&self, f: impl FnOnce(&mut Reads)) {
        f(&mut self.reads.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn reads(&self) -> Reads {
        *self.reads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Values kept across passes and objects for at most `max_age`; concurrent asks for a key with
/// no value young enough wait for one read. Expired values are dropped on the next ask, so it
/// holds only what was read within the age.
#[derive(Debug)]
pub(crate) struct Aged<K, V> {
    max_age: Duration,
    cells: Mutex<HashMap<K, Arc<Dated<V>>>>,
}

/// A value and when it was read, once read.
type Dated<V> = OnceCell<(Instant, V)>;

impl<K: Eq + Hash + Clone, V: Clone> Aged<K, V> {
    pub(crate) fn new(max_age: Duration) -> Self {
        Self { max_age, cells: Mutex::default() }
    }

    /// The value of `key` read within the age, or read now with `read`; and whether this ask
    /// read it. A failed read is not kept.
    #[cfg(test)]
    pub(crate) async fn get<F, Fut>(&self, key: &K, read: F) -> Result<(V, bool), AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        self.get_if(key, |_| true, read).await
    }

    /// [`Aged::get`], where a value read within the age that `accept` refuses is read again
    /// (an ask that finds such a read under way still waits for it).
    pub(crate) async fn get_if<F, Fut>(
        &self,
        key: &K,
        accept: impl Fn(&V) -> bool,
        read: F,
    ) -> Result<(V, bool), AwsError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, AwsError>>,
    {
        let cell = {
            let mut cells = self.sweep();
            let cell = cells.entry(key.clone()).or_default();
            if cell.get().is_some_and(|(_, value)| !accept(value)) {
                *cell = Arc::default();
            }
            cell.clone()
        };
        let mut made = false;
        let (_, value) = cell
            .get_or_try_init(|| {
                made = true;
                let reading = read();
                async move { Ok::<_, AwsError>((Instant::now(), reading.await?)) }
            })
            .await?;
        Ok((value.clone(), made))
    }

    /// Forgets `key` (its owner changed what it holds): the next ask reads it again.
    pub(crate) fn forget(&self, key: &K) {
        self.cells.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    /// Keeps `value`, just read by its owner, as the newest read of `key`.
    pub(crate) fn put(&self, key: &K, value: V) {
        let cell = Arc::new(OnceCell::new_with(Some((Instant::now(), value))));
        self.sweep().insert(key.clone(), cell);
    }

    /// The value of `key` read within the age, without reading.
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        self.sweep().get(key).and_then(|cell| cell.get()).map(|(_, value)| value.clone())
    }

    /// The cells, those older than the age dropped.
    fn sweep(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<Dated<V>>>> {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        cells.retain(|_, cell| cell.get().is_none_or(|(at, _)| now.duration_since(*at) < self.max_age));
        cells
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cells.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn family() -> Family<&'static str, u32> {
        Family::default()
    }

    async fn read(calls: &AtomicU32) -> Result<u32, AwsError> {
        tokio::task::yield_now().await;
        Ok(calls.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test]
    async fn concurrent_asks_for_one_key_make_one_read() {
        let (f, calls) = (family(), AtomicU32::new(0));
        let (a, b, c) = tokio::join!(f.get(&"vpc", || read(&calls)), f.get(&"vpc", || read(&calls)), async {
            f.get(&"vpc", || read(&calls)).await
        });
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 1, 1));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(f.reads(), Reads { made: 1, asked: 3 });
    }

    #[tokio::test]
    async fn each_key_is_read_on_its_own() {
        let (f, calls) = (family(), AtomicU32::new(0));
        assert_eq!(f.get(&"dev", || read(&calls)).await.unwrap(), 1);
        assert_eq!(f.get(&"staging", || read(&calls)).await.unwrap(), 2);
        assert_eq!(f.get(&"dev", || read(&calls)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_forgotten_key_is_read_again() {
        let (f, calls) = (family(), AtomicU32::new(0));
        assert_eq!(f.get(&"vpc", || read(&calls)).await.unwrap(), 1);
        f.forget(&"vpc");
        assert_eq!(f.get(&"vpc", || read(&calls)).await.unwrap(), 2);
        assert_eq!(f.reads(), Reads { made: 2, asked: 2 });
    }

    #[tokio::test]
    async fn a_write_forgets_its_key_and_a_step_that_wrote_nothing_keeps_it() {
        let (f, calls, changes) = (family(), AtomicU32::new(0), Changes::default());
        f.get(&"vpc", || read(&calls)).await.unwrap();
        f.writing(&"vpc", &changes, async |_| ()).await;
        assert_eq!(f.get(&"vpc", || read(&calls)).await.unwrap(), 1, "nothing written, nothing forgotten");
        changes.record(crate::steps::Action::Created, "another step's subnet");
        f.writing(&"vpc", &changes, async |ours| ours.record(crate::steps::Action::Updated, "VPC")).await;
        assert_eq!(f.get(&"vpc", || read(&calls)).await.unwrap(), 2, "its own write forgets it");
        assert_eq!(changes.take().len(), 2, "the step's write is in the pass's log");
    }

    #[tokio::test]
    async fn a_wait_that_is_not_over_reads_again_and_one_that_is_over_is_kept() {
        let (f, calls) = (family(), AtomicU32::new(0));
        assert_eq!(f.waiting(&"vpce", || read(&calls), |n| *n >= 2).await.unwrap(), 1);
        assert_eq!(f.waiting(&"vpce", || read(&calls), |n| *n >= 2).await.unwrap(), 2, "still waiting: read again");
        assert_eq!(f.get(&"vpce", || read(&calls)).await.unwrap(), 2, "settled: kept");
    }

    #[tokio::test]
    async fn a_failed_read_is_not_kept() {
        let (f, calls) = (family(), AtomicU32::new(0));
        let refused = f.get(&"vpc", || async { Err(AwsError::from_code("Throttling", "slow down", None)) }).await;
        assert_eq!(refused.unwrap_err().code, "Throttling");
        assert_eq!(f.get(&"vpc", || read(&calls)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_shared_read_serves_every_pass_within_its_age_then_is_read_again() {
        let (shared, calls) = (Aged::new(Duration::from_millis(200)), AtomicU32::new(0));
        let (a, b) = tokio::join!(shared.get(&"group", || read(&calls)), shared.get(&"group", || read(&calls)));
        let made = [a.as_ref().unwrap().1, b.as_ref().unwrap().1];
        assert_eq!((a.unwrap().0, b.unwrap().0, made.iter().filter(|m| **m).count()), (1, 1, 1), "one read for both");
        assert_eq!(shared.get(&"group", || read(&calls)).await.unwrap(), (1, false), "within its age");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(shared.get(&"group", || read(&calls)).await.unwrap(), (2, true), "older than its age");
    }

    #[tokio::test]
    async fn a_shared_read_the_asker_refuses_is_read_again_and_replaces_it() {
        let (shared, calls) = (Aged::new(Duration::from_secs(60)), AtomicU32::new(0));
        shared.put(&"networks", 0);
        assert_eq!(shared.get_if(&"networks", |v| *v > 0, || read(&calls)).await.unwrap(), (1, true));
        assert_eq!(shared.get(&"networks", || read(&calls)).await.unwrap(), (1, false), "the new read is shared");
        assert_eq!(shared.peek(&"networks"), Some(1));
        assert_eq!(shared.peek(&"other"), None, "peek never reads");
    }

    #[tokio::test]
    async fn a_put_is_what_the_next_ask_gets_and_expired_keys_are_dropped() {
        let (shared, calls) = (Aged::new(Duration::from_millis(100)), AtomicU32::new(0));
        shared.get(&"old", || read(&calls)).await.unwrap();
        shared.put(&"group", 7);
        assert_eq!(shared.get(&"group", || read(&calls)).await.unwrap(), (7, false));
        tokio::time::sleep(Duration::from_millis(150)).await;
        shared.put(&"group", 8);
        shared.get(&"group", || read(&calls)).await.unwrap();
        assert_eq!(shared.len(), 1, "the expired key is gone");
    }

    #[tokio::test]
    async fn a_pass_taking_a_shared_read_counts_no_read_made() {
        let (f, shared, calls) = (family(), Aged::new(Duration::from_secs(60)), AtomicU32::new(0));
        shared.put(&"group", 5);
        assert_eq!(f.get_shared(&"group", &shared, || read(&calls)).await.unwrap(), 5);
        assert_eq!(f.reads(), Reads { made: 0, asked: 1 });
        let other = family();
        assert_eq!(other.get_shared(&"fresh", &shared, || read(&calls)).await.unwrap(), 1);
        assert_eq!(other.get_shared(&"fresh", &shared, || read(&calls)).await.unwrap(), 1);
        assert_eq!(other.reads(), Reads { made: 1, asked: 2 });
    }

    #[tokio::test]
    async fn a_complete_listing_read_across_a_write_in_its_own_account_is_not_kept_as_base() {
        let shared = Shared::new(Duration::from_secs(60), Duration::from_secs(60));
        let account =
            |n: &str| AccountAccess { role_arn: Some(format!("arn:aws:iam::{n}:role/r")), ..Default::default() };
        let (dev, staging) = (account("111111111111"), account("222222222222"));
        let listing = Arc::new(crate::network::AccountNetworks::default());
        // A write in another account meanwhile: the listing is kept.
        let read = async {
            shared.forget_networks(&staging);
            Ok(listing.clone())
        };
        shared.complete_listing(&dev, read).await.unwrap();
        assert!(shared.complete_networks.peek(&dev).is_some(), "a write elsewhere does not spoil the base");
        // A write in its own account meanwhile: not kept (and the old base is gone).
        let read = async {
            shared.forget_networks(&dev);
            Ok(listing.clone())
        };
        shared.complete_listing(&dev, read).await.unwrap();
        assert!(shared.complete_networks.peek(&dev).is_none(), "a listing that may predate the write is no base");
        shared.complete_listing(&dev, async { Ok(listing.clone()) }).await.unwrap();
        assert!(shared.complete_networks.peek(&dev).is_some());
    }
}
