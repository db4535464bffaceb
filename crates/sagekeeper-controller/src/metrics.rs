//! Prometheus metrics of the controller: reconciles, errors by category, reconcile duration,
//! leadership, and (through `sagekeeper-aws`) every AWS call.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cpu_time::ThreadTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use sagekeeper_api::conditions::{READY, STALLED};
use sagekeeper_aws::AwsCallMetrics;
use sagekeeper_aws::observe::Reads;
use tracing::Subscriber;
use tracing::span::Id;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Buckets of the reconcile CPU histograms, in seconds.
const CPU_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// All metrics sagekeeper exports, registered in one registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// The registry `/metrics` serves.
    pub registry: Registry,
    /// AWS calls by service, operation and outcome.
    pub aws: AwsCallMetrics,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    cpu: HistogramVec,
    own_cpu: HistogramVec,
    longest: GaugeVec,
    leader: IntGauge,
    step_duration: HistogramVec,
    step_failures: IntCounterVec,
    observe_asks: IntCounterVec,
    objects: IntGaugeVec,
    states: Arc<Mutex<HashMap<String, ObjectState>>>,
}

/// What the objects gauge keeps of one object: its kind, and (status, reason) of Ready and of
/// Stalled.
type ObjectState = (String, [(String, String); 2]);

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(Opts::new("sagekeeper_reconciles_total", "Reconciles by kind"), &["kind"])?;
        let errors = IntCounterVec::new(
            Opts::new("sagekeeper_reconcile_errors_total", "Reconcile errors by kind and category"),
            &["kind", "category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new("sagekeeper_reconcile_duration_seconds", "Reconcile duration by kind")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            &["kind"],
        )?;
        let cpu = HistogramVec::new(
            HistogramOpts::new(
                "sagekeeper_reconcile_cpu_seconds",
                "CPU time of a reconcile's own work by kind (its waits for AWS and the API server excluded)",
            )
            .buckets(CPU_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let own_cpu = HistogramVec::new(
            HistogramOpts::new(
                "sagekeeper_reconcile_own_cpu_seconds",
                "CPU time of a reconcile's own work by kind, its AWS SDK calls (building, signing and parsing them) excluded",
            )
            .buckets(CPU_BUCKETS.to_vec()),
            &["kind"],
        )?;
        let longest = GaugeVec::new(
            Opts::new("sagekeeper_reconcile_duration_max_seconds", "The longest reconcile since start, by kind"),
            &["kind"],
        )?;
        let leader = IntGauge::new("sagekeeper_leader", "1 while this replica holds the leader lease")?;
        let step_duration = HistogramVec::new(
            HistogramOpts::new("sagekeeper_step_duration_seconds", "Duration of one plan step by kind and step")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["kind", "step"],
        )?;
        let step_failures = IntCounterVec::new(
            Opts::new("sagekeeper_step_failures_total", "Failed plan steps by kind, step and error category"),
            &["kind", "step", "category"],
        )?;
        let observe_asks = IntCounterVec::new(
            Opts::new(
                "sagekeeper_observe_asks_total",
                "Steps' asks for observed AWS state by kind, answered by a read or from the pass's snapshot",
            ),
            &["kind", "answer"],
        )?;
        registry.register(Box::new(observe_asks.clone()))?;
        let objects = IntGaugeVec::new(
            Opts::new(
                "sagekeeper_objects",
                "Objects by kind and the status and reason of their Ready and Stalled conditions",
            ),
            &["kind", "condition", "status", "reason"],
        )?;
        registry.register(Box::new(objects.clone()))?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(cpu.clone()))?;
        registry.register(Box::new(own_cpu.clone()))?;
        registry.register(Box::new(longest.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(step_duration.clone()))?;
        registry.register(Box::new(step_failures.clone()))?;
        let aws = AwsCallMetrics::register(&registry)?;
        // Every kind's series exists from the start, so dashboards see 0 rather than nothing.
        for kind in ["AwsAccount", "DataScienceEnvironment", "MLOpsProject", "ModelDeployment"] {
            reconciles.with_label_values(&[kind]);
            duration.with_label_values(&[kind]);
            cpu.with_label_values(&[kind]);
            own_cpu.with_label_values(&[kind]);
            longest.with_label_values(&[kind]);
        }
        Ok(Self {
            registry,
            aws,
            reconciles,
            errors,
            duration,
            cpu,
            own_cpu,
            longest,
            leader,
            step_duration,
            step_failures,
            observe_asks,
            objects,
            states: Arc::default(),
        })
    }

    /// Counts one reconcile of `kind` and times it until the guard drops.
    pub(crate) fn reconcile(&self, kind: &str) -> ReconcileTimer {
        self.reconciles.with_label_values(&[kind]).inc();
        ReconcileTimer {
            histogram: self.duration.with_label_values(&[kind]),
            longest: self.longest.with_label_values(&[kind]),
            start: Instant::now(),
        }
    }

    /// The histograms of reconcile CPU time of `kind`, in all and without its AWS SDK calls
    /// (see [`cpu_timed`]).
    pub(crate) fn reconcile_cpu(&self, kind: &str) -> [Histogram; 2] {
        [self.cpu.with_label_values(&[kind]), self.own_cpu.with_label_values(&[kind])]
    }

    /// Counts one reconcile error of `kind` in a fixed `category`.
    pub(crate) fn error(&self, kind: &str, category: &str) {
        self.errors.with_label_values(&[kind, category]).inc();
    }

    /// Records one run of a plan step; `step` is the step enum's variant name (bounded), and
    /// `failure` the error category if it failed.
    pub(crate) fn step(&self, kind: &str, step: &str, took: std::time::Duration, failure: Option<&str>) {
        self.step_duration.with_label_values(&[kind, step]).observe(took.as_secs_f64());
        if let Some(category) = failure {
            self.step_failures.with_label_values(&[kind, step, category]).inc();
        }
    }

    /// Records how one pass of `kind` observed: reads made, and asks answered from them.
    pub(crate) fn observed(&self, kind: &str, reads: Reads) {
        self.observe_asks.with_label_values(&[kind, "read"]).inc_by(reads.made);
        self.observe_asks.with_label_values(&[kind, "snapshot"]).inc_by(reads.asked.saturating_sub(reads.made));
    }

    /// Records the Ready and Stalled conditions an object of `kind` has after a pass.
    pub(crate) fn object(&self, kind: &str, uid: &str, conditions: &[Condition]) {
        let of = |t: &str| {
            sagekeeper_api::conditions::find(conditions, t)
                .map_or_else(|| ("Unknown".to_owned(), String::new()), |c| (c.status.clone(), c.reason.clone()))
        };
        let state = (kind.to_owned(), [of(READY), of(STALLED)]);
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if states.get(uid) != Some(&state) {
            states.insert(uid.to_owned(), state);
            self.count_objects(&states);
        }
    }

    /// Forgets an object that is gone.
    pub(crate) fn object_gone(&self, uid: &str) {
        let mut states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        if states.remove(uid).is_some() {
            self.count_objects(&states);
        }
    }

    fn count_objects(&self, states: &HashMap<String, ObjectState>) {
        let mut counts = BTreeMap::<[&str; 4], i64>::new();
        for (kind, conditions) in states.values() {
            for (name, (status, reason)) in [READY, STALLED].into_iter().zip(conditions) {
                *counts.entry([kind.as_str(), name, status, reason]).or_default() += 1;
            }
        }
        self.objects.reset();
        for (labels, count) in counts {
            self.objects.with_label_values(&labels).set(count);
        }
    }

    /// Records whether this replica leads.
    pub(crate) fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// Runs `work` and records the CPU time its polls took on their threads: what the controller
/// itself spends on it, with every wait for AWS or the API server left out (a wait is time
/// between polls). `total` gets all of it; `own` what is left after the polls of AWS SDK calls
/// inside it ([`SdkCpu`], where the binary installs it).
pub(crate) async fn cpu_timed<F: std::future::Future>([total, own]: [Histogram; 2], work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    let (mut spent, mut sdk) = (Duration::ZERO, Duration::ZERO);
    let output = std::future::poll_fn(|cx| {
        let before = sdk_cpu();
        let start = ThreadTime::now();
        let poll = work.as_mut().poll(cx);
        spent += start.elapsed();
        sdk += sdk_cpu().saturating_sub(before);
        poll
    })
    .await;
    total.observe(spent.as_secs_f64());
    own.observe(spent.saturating_sub(sdk).as_secs_f64());
    output
}

thread_local! {
    /// CPU this thread has spent inside AWS SDK calls; how many of their spans it is in now,
    /// and since when.
    static SDK_CPU: Cell<(Duration, u32, Option<ThreadTime>)> = const { Cell::new((Duration::ZERO, 0, None)) };
}

/// CPU this thread has spent inside AWS SDK calls so far.
fn sdk_cpu() -> Duration {
    SDK_CPU.with(|cell| {
        let (spent, _, inside) = cell.get();
        spent + inside.map_or(Duration::ZERO, |start| start.elapsed())
    })
}

/// A tracing layer that counts the CPU time each thread spends inside AWS SDK calls: the polls
/// of the span the SDK opens around every operation (it carries `rpc.system`), in which it
/// builds, signs and sends the request and parses the answer. [`cpu_timed`] leaves it out of a
/// reconcile's own work. Install it with [`SdkCpu::layer`]; the SDK opens these spans at
/// DEBUG level, and the layer's own filter enables only them.
#[derive(Debug)]
pub struct SdkCpu;

impl SdkCpu {
    /// The layer with its filter: only the SDK's per-operation spans.
    pub fn layer<S>() -> impl Layer<S>
    where
        S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let spans =
            tracing_subscriber::filter::filter_fn(|meta| meta.is_span() && meta.fields().field("rpc.system").is_some());
        // The SDK opens them at DEBUG: without the hint the process's level would be TRACE.
        SdkCpu.with_filter(spans.with_max_level_hint(tracing::level_filters::LevelFilter::DEBUG))
    }
}

/// The controller's tracing subscriber: log lines (JSON or text) as `filter` lets them through,
/// and [`SdkCpu`], whose own filter enables the SDK's operation spans (logged or not).
pub fn subscriber(json: bool, filter: tracing_subscriber::EnvFilter) -> impl Subscriber + Send + Sync + 'static {
    use tracing_subscriber::layer::SubscriberExt;
    let log = match json {
        true => tracing_subscriber::fmt::layer().json().boxed(),
        false => tracing_subscriber::fmt::layer().boxed(),
    };
    tracing_subscriber::registry().with(log.with_filter(filter)).with(SdkCpu::layer())
}

impl<S: Subscriber> Layer<S> for SdkCpu {
    fn on_enter(&self, _: &Id, _: Context<'_, S>) {
        SDK_CPU.with(|cell| {
            let (spent, depth, inside) = cell.get();
            cell.set((spent, depth + 1, if depth == 0 { Some(ThreadTime::now()) } else { inside }));
        });
    }

    fn on_exit(&self, _: &Id, _: Context<'_, S>) {
        SDK_CPU.with(|cell| match cell.get() {
            (spent, 1, Some(start)) => cell.set((spent + start.elapsed(), 0, None)),
            (spent, depth, inside) => cell.set((spent, depth.saturating_sub(1), inside)),
        });
    }
}

/// Observes the reconcile duration when dropped.
pub(crate) struct ReconcileTimer {
    histogram: Histogram,
    longest: Gauge,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let seconds = self.start.elapsed().as_secs_f64();
        self.histogram.observe(seconds);
        if seconds > self.longest.get() {
            self.longest.set(seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn burn(ms: u64) {
        let start = ThreadTime::now();
        while start.elapsed() < Duration::from_millis(ms) {}
    }

    #[tokio::test]
    async fn reconcile_cpu_counts_the_work_of_polls_and_not_the_waits_between_them() {
        let metrics = Metrics::new().unwrap();
        let histograms = metrics.reconcile_cpu("MLOpsProject");
        cpu_timed(histograms.clone(), async {
            burn(20);
            tokio::time::sleep(Duration::from_millis(300)).await;
            burn(10);
        })
        .await;
        for histogram in &histograms {
            assert_eq!(histogram.get_sample_count(), 1);
            let spent = histogram.get_sample_sum();
            assert!((0.030..0.2).contains(&spent), "{spent} s: 30 ms of work and a 300 ms wait");
        }
    }

    #[tokio::test]
    async fn a_reconciles_own_cpu_leaves_out_the_polls_of_aws_sdk_calls() {
        use tracing::Instrument;
        // The binary's subscriber, with its default filter: the SDK's spans are enabled for
        // the CPU count though the log lines leave them out.
        let _default = tracing::subscriber::set_default(subscriber(true, "info,aws=warn".parse().unwrap()));
        let metrics = Metrics::new().unwrap();
        let [total, own] = metrics.reconcile_cpu("DataScienceEnvironment");
        // An SDK call: its operation span, as the SDK opens it, polled twice around a wait,
        // with a nested call inside (credentials from an assumed role).
        let call = async {
            burn(20);
            tokio::time::sleep(Duration::from_millis(50)).await;
            burn(10);
            let assume = tracing::debug_span!(target: "aws_sdk_sts::operation::assume_role", "STS.AssumeRole", "rpc.system" = "aws-api");
            async { burn(10) }.instrument(assume).await;
        }
        .instrument(tracing::debug_span!(target: "aws_sdk_ec2::operation::describe_vpcs", "EC2.DescribeVpcs", "rpc.system" = "aws-api"));
        cpu_timed([total.clone(), own.clone()], async {
            burn(15);
            // Another span (the controller's own) is not an SDK call.
            async { burn(5) }.instrument(tracing::info_span!("step")).await;
            call.await;
        })
        .await;
        let (total, own) = (total.get_sample_sum(), own.get_sample_sum());
        assert!((0.060..0.2).contains(&total), "{total} s in all: 20 ms of own work and 40 ms in the call");
        assert!((0.020..0.035).contains(&own), "{own} s of own work: 20 ms, the call's 40 ms left out");
    }

    fn condition(kind: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: kind.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    fn objects(m: &Metrics, labels: [&str; 4]) -> i64 {
        m.objects.get_metric_with_label_values(&labels).map_or(0, |g| g.get())
    }

    #[test]
    fn the_objects_gauge_counts_each_object_once_by_its_latest_ready_and_stalled() {
        let m = Metrics::new().unwrap();
        let stalled = [condition(READY, "False", "AccessDenied"), condition(STALLED, "True", "AccessDenied")];
        let ready = [condition(READY, "True", "Converged"), condition(STALLED, "False", "Converged")];
        m.object("DataScienceEnvironment", "a", &stalled);
        m.object("DataScienceEnvironment", "b", &stalled);
        m.object("DataScienceEnvironment", "b", &stalled);
        assert_eq!(objects(&m, ["DataScienceEnvironment", STALLED, "True", "AccessDenied"]), 2);
        m.object("DataScienceEnvironment", "b", &ready);
        assert_eq!(objects(&m, ["DataScienceEnvironment", STALLED, "True", "AccessDenied"]), 1);
        assert_eq!(objects(&m, ["DataScienceEnvironment", READY, "True", "Converged"]), 1);
        m.object_gone("a");
        let families = m.registry.gather();
        let series: usize =
            families.iter().filter(|f| f.name() == "sagekeeper_objects").map(|f| f.get_metric().len()).sum();
        assert_eq!(series, 2, "only b's Ready and Stalled remain");
    }
}
