//! Leader election on a `coordination.k8s.io/v1` Lease, so a rolling update never has two
//! writers: only the holder reconciles. Expiry is judged by the local clock from when this
//! replica last saw the lease change (as client-go does), so clock skew between nodes is
//! harmless. A leader that cannot renew within the renew deadline stops.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tracing::{info, warn};

/// Where the lease lives and how long leadership lasts.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name, or host name plus a random suffix).
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often candidates retry and leaders renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Timings for `identity` scaled from the lease duration the way client-go's defaults are
    /// (15 s lease, 10 s renew deadline, 2 s retry): a leader gets several renewal attempts
    /// before its deadline, whatever the duration.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
        lease_duration: Duration,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration,
            renew_deadline: lease_duration.mul_f64(2.0 / 3.0),
            retry_period: lease_duration.mul_f64(2.0 / 15.0),
        }
    }
}

/// Competes for and holds one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    /// The lease record last seen (holder, renew time) and when this replica saw it change.
    observed: Option<(Option<String>, Option<MicroTime>, Instant)>,
}

impl LeaderElector {
    /// An elector for the lease in `settings`.
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self { api: Api::namespaced(client, &settings.namespace), settings, observed: None }
    }

    /// The name of the lease.
    pub fn lease_name(&self) -> &str {
        &self.settings.name
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&mut self) {
        info!(lease = %self.settings.name, identity = %self.settings.identity, "waiting for leadership");
        loop {
            match self.attempt(self.settings.renew_deadline).await {
                Ok(true) => {
                    info!(lease = %self.settings.name, identity = %self.settings.identity, "became leader");
                    return;
                }
                Ok(false) => {}
                Err(e) => warn!(error = %e, "lease acquisition failed"),
            }
            tokio::time::sleep(self.settings.retry_period).await;
        }
    }

    /// Renews the lease until another holder took it or no renewal succeeded within the renew
    /// deadline, then returns: leadership is lost. Each attempt is cut off at the deadline, so
    /// a hung request cannot keep a leader acting after its lease expired.
    pub async fn hold(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            let started = Instant::now();
            let left = self.settings.renew_deadline.saturating_sub(last_renewal.elapsed());
            match self.attempt(left).await {
                // Counted from when the request left, not when the answer came.
                Ok(true) => last_renewal = started,
                Ok(false) => {
                    warn!(lease = %self.settings.name, "lease taken by another replica");
                    return;
                }
                Err(e) => warn!(error = %e, "lease renewal failed"),
            }
            if last_renewal.elapsed() >= self.settings.renew_deadline {
                warn!(lease = %self.settings.name, "could not renew the lease within the renew deadline");
                return;
            }
        }
    }

    /// One acquire-or-renew round, given up after `limit`.
    async fn attempt(&mut self, limit: Duration) -> Result<bool, String> {
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    /// Gives the lease up so a standby can take over at once, not after the lease expires.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else { return };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(&self.settings.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => info!(lease = %self.settings.name, "released leadership"),
            Err(e) => warn!(error = %e, "could not release the lease"),
        }
    }

    /// One round: create the lease, renew it, or take it over once it expired. True when this
    /// replica holds it afterwards. Writes are guarded by resourceVersion, so two candidates
    /// racing for an expired lease cannot both win.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let me = self.settings.identity.clone();
        let duration = i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.settings.name.clone()), ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.clone());
        let seen_at = match &self.observed {
            Some((h, r, at)) if (h, r) == (&record.0, &record.1) => *at,
            _ => Instant::now(),
        };
        self.observed = Some((record.0, record.1, seen_at));
        let held_by_me = holder.as_deref() == Some(me.as_str());
        let valid_for = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
        if !held_by_me && holder.is_some() && seen_at.elapsed() < valid_for {
            return Ok(false);
        }
        if !held_by_me {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(me);
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(duration);
        match self.api.replace(&self.settings.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
