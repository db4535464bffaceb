//! The CloudWatch alarms of a guarded rollout: two per endpoint that sagekeeper owns (5XX errors
//! and p99 model latency on the endpoint's variant), created and kept as planned, found by name
//! and changed only with our owner-uid; and which alarms of a rolled-back update went into
//! ALARM, read from their history.

use std::time::SystemTime;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, HistoryItemType, MetricAlarm, Statistic, Tag};
use aws_smithy_types::DateTime;

use crate::errors::{AwsError, ErrorKind};
use crate::sessions::Session;
use crate::steps::{Action, Changes, Owner};

/// The variant every sagekeeper endpoint config has (guardrails need the same name in both).
pub const VARIANT: &str = "AllTraffic";

/// What an owned alarm watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    /// More than `max` 5XX answers in a minute (Sum of Invocation5XXErrors).
    Invocation5xxErrors {
        /// The most 5XX answers in a minute that do not alarm.
        max: i32,
    },
    /// A p99 of ModelLatency over a minute above `millis` (SageMaker reports microseconds).
    ModelLatencyP99 {
        /// The highest p99 latency that does not alarm, in milliseconds.
        millis: i32,
    },
}

/// One alarm sagekeeper owns on an endpoint's variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmPlan {
    /// The alarm name.
    pub name: String,
    /// The endpoint whose variant it watches.
    pub endpoint: String,
    /// What it watches.
    pub watch: Watch,
}

/// The metric settings of an alarm, as PutMetricAlarm takes them and DescribeAlarms returns them.
#[derive(Debug, PartialEq)]
struct Settings<'a> {
    metric: &'a str,
    statistic: Option<Statistic>,
    extended: Option<&'a str>,
    threshold: f64,
    dimensions: Vec<(&'a str, &'a str)>,
    period: i32,
    evaluation_periods: i32,
    operator: ComparisonOperator,
    missing: &'a str,
}

impl AlarmPlan {
    fn settings(&self) -> Settings<'_> {
        let (metric, statistic, extended, threshold) = match self.watch {
            Watch::Invocation5xxErrors { max } => ("Invocation5XXErrors", Some(Statistic::Sum), None, f64::from(max)),
            Watch::ModelLatencyP99 { millis } => ("ModelLatency", None, Some("p99"), f64::from(millis) * 1000.0),
        };
        Settings {
            metric,
            statistic,
            extended,
            threshold,
            dimensions: vec![("EndpointName", self.endpoint.as_str()), ("VariantName", VARIANT)],
            period: 60,
            evaluation_periods: 1,
            operator: ComparisonOperator::GreaterThanThreshold,
            // No requests is no evidence against the new version.
            missing: "notBreaching",
        }
    }

    fn description(&self) -> String {
        let what = match self.watch {
            Watch::Invocation5xxErrors { max } => format!("more than {max} 5XX errors in a minute"),
            Watch::ModelLatencyP99 { millis } => format!("a p99 model latency above {millis} ms over a minute"),
        };
        format!("sagekeeper: rolls an update of endpoint {} back on {what}", self.endpoint)
    }
}

fn described(alarm: &MetricAlarm) -> Settings<'_> {
    let mut dimensions: Vec<(&str, &str)> =
        alarm.dimensions().iter().map(|d| (d.name().unwrap_or_default(), d.value().unwrap_or_default())).collect();
    dimensions.sort_unstable();
    Settings {
        metric: alarm.metric_name().unwrap_or_default(),
        statistic: alarm.statistic().cloned(),
        extended: alarm.extended_statistic(),
        threshold: alarm.threshold().unwrap_or(f64::NAN),
        dimensions,
        period: alarm.period().unwrap_or_default(),
        evaluation_periods: alarm.evaluation_periods().unwrap_or_default(),
        operator: alarm.comparison_operator().cloned().unwrap_or(ComparisonOperator::GreaterThanThreshold),
        missing: alarm.treat_missing_data().unwrap_or("missing"),
    }
}

/// Whether the alarm is as planned (namespace, metric, statistic, threshold, dimensions, period,
/// no actions).
fn as_planned(plan: &AlarmPlan, alarm: &MetricAlarm) -> bool {
    let mut want = plan.settings();
    want.dimensions.sort_unstable();
    alarm.namespace() == Some("AWS/SageMaker")
        && described(alarm) == want
        && alarm.alarm_actions().is_empty()
        && alarm.ok_actions().is_empty()
        && alarm.insufficient_data_actions().is_empty()
}

/// The alarms of `names` that exist, one DescribeAlarms call per hundred names.
async fn describe(cw: &Client, names: &[String]) -> Result<Vec<MetricAlarm>, AwsError> {
    let mut found = Vec::new();
    for chunk in names.chunks(100) {
        let out =
            cw.describe_alarms().set_alarm_names(Some(chunk.to_vec())).send().await.map_err(AwsError::from_sdk)?;
        found.extend(out.metric_alarms().iter().cloned());
    }
    Ok(found)
}

/// The alarm's tags.
async fn tags_of(cw: &Client, arn: &str) -> Result<Vec<(String, String)>, AwsError> {
    let listed = cw.list_tags_for_resource().resource_arn(arn).send().await.map_err(AwsError::from_sdk)?;
    Ok(listed
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_owned(), t.value().unwrap_or_default().to_owned()))
        .collect())
}

fn pairs(tags: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// What a rollout's alarms look like in an account after `ensure`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alarms {
    /// Every alarm an update is watched by: ours, then the team's that exist.
    pub names: Vec<String>,
    /// The team's alarms that are not in the account.
    pub missing: Vec<String>,
    /// Read from AWS this pass (not carried over from the last one while an update runs).
    pub checked: bool,
}

/// Creates or repairs our alarms (`plans`), and looks up the team's (`theirs`), in one
/// DescribeAlarms call. An alarm of ours is adopted only with our owner-uid: checked the first
/// time it is seen (`known`: the alarms the last pass reported) and before any change.
pub async fn ensure(
    session: &Session,
    owner: &Owner,
    plans: &[AlarmPlan],
    theirs: &[String],
    known: &[String],
    changes: &Changes,
) -> Result<Alarms, AwsError> {
    let cw = session.cloudwatch();
    let all: Vec<String> = plans.iter().map(|p| p.name.clone()).chain(theirs.iter().cloned()).collect();
    let found = describe(cw, &all).await?;
    let find = |name: &str| found.iter().find(|a| a.alarm_name() == Some(name));
    for plan in plans {
        let what = format!("alarm {}", plan.name);
        let existing = find(&plan.name);
        if let Some(alarm) = existing {
            let arn = alarm.alarm_arn().unwrap_or_default();
            let fine = as_planned(plan, alarm);
            if !fine || !known.contains(&plan.name) {
                let tags = tags_of(cw, arn).await?;
                if !owner.owns(pairs(&tags)) {
                    return Err(owner.conflict(&what, pairs(&tags)));
                }
            }
            if fine {
                continue;
            }
        }
        put(cw, owner, plan).await?;
        changes.record(if existing.is_some() { Action::Updated } else { Action::Created }, what);
    }
    let missing = theirs.iter().filter(|n| find(n).is_none()).cloned().collect();
    let names = all.into_iter().filter(|n| plans.iter().any(|p| &p.name == n) || find(n).is_some()).collect();
    Ok(Alarms { names, missing, checked: true })
}

async fn put(cw: &Client, owner: &Owner, plan: &AlarmPlan) -> Result<(), AwsError> {
    let s = plan.settings();
    let dimensions = s.dimensions.iter().map(|(k, v)| Dimension::builder().name(*k).value(*v).build());
    let tags = owner.tags("hosting/rollout-alarm").into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    cw.put_metric_alarm()
        .alarm_name(&plan.name)
        .alarm_description(plan.description())
        .namespace("AWS/SageMaker")
        .metric_name(s.metric)
        .set_statistic(s.statistic)
        .set_extended_statistic(s.extended.map(str::to_owned))
        .set_dimensions(Some(dimensions.collect()))
        .period(s.period)
        .evaluation_periods(s.evaluation_periods)
        .threshold(s.threshold)
        .comparison_operator(s.operator)
        .treat_missing_data(s.missing)
        .actions_enabled(false)
        .set_tags(Some(tags.collect()))
        .send()
        .await
        .map_err(AwsError::from_sdk)?;
    Ok(())
}

/// Deletes those of `names` that carry our owner-uid (others', and those already gone, stay as
/// they are).
pub async fn remove(session: &Session, owner: &Owner, names: &[String], changes: &Changes) -> Result<(), AwsError> {
    let cw = session.cloudwatch();
    let mut ours = Vec::new();
    for alarm in describe(cw, names).await? {
        if owner.owns(pairs(&tags_of(cw, alarm.alarm_arn().unwrap_or_default()).await?)) {
            ours.push(alarm.alarm_name().unwrap_or_default().to_owned());
        }
    }
    if ours.is_empty() {
        return Ok(());
    }
    match cw.delete_alarms().set_alarm_names(Some(ours.clone())).send().await.map_err(AwsError::from_sdk) {
        Err(e) if e.kind != ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for name in ours {
        changes.record(Action::Deleted, format!("alarm {name}"));
    }
    Ok(())
}

/// Those of `names` whose history shows a change into ALARM since `since`: what rolled an update
/// begun then back (SageMaker's failure reason does not say).
pub async fn fired_since(session: &Session, names: &[String], since: SystemTime) -> Result<Vec<String>, AwsError> {
    let cw = session.cloudwatch();
    let start = DateTime::from(since);
    let mut fired = Vec::new();
    for name in names {
        let mut pages = cw
            .describe_alarm_history()
            .alarm_name(name)
            .history_item_type(HistoryItemType::StateUpdate)
            .start_date(start)
            .into_paginator()
            .send();
        'pages: while let Some(page) = pages.next().await {
            for item in page.map_err(AwsError::from_sdk)?.alarm_history_items() {
                if went_into_alarm(item.history_data().unwrap_or_default()) {
                    fired.push(name.clone());
                    break 'pages;
                }
            }
        }
    }
    Ok(fired)
}

/// A StateUpdate's HistoryData says the new state is ALARM.
fn went_into_alarm(history_data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(history_data)
        .is_ok_and(|d| d.pointer("/newState/stateValue").and_then(|v| v.as_str()) == Some("ALARM"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_watched_in_microseconds_as_a_p99_and_errors_as_a_sum() {
        let latency =
            AlarmPlan { name: "a".into(), endpoint: "ep".into(), watch: Watch::ModelLatencyP99 { millis: 250 } };
        let s = latency.settings();
        assert_eq!(
            (s.metric, s.extended, s.statistic.clone(), s.threshold),
            ("ModelLatency", Some("p99"), None, 250_000.0)
        );
        assert_eq!(s.dimensions, vec![("EndpointName", "ep"), ("VariantName", "AllTraffic")]);
        let errors = AlarmPlan { watch: Watch::Invocation5xxErrors { max: 5 }, ..latency };
        let s = errors.settings();
        assert_eq!((s.metric, s.statistic, s.threshold), ("Invocation5XXErrors", Some(Statistic::Sum), 5.0));
    }

    #[test]
    fn a_state_update_into_alarm_is_told_from_one_out_of_it() {
        let into =
            r#"{"version":"1.0","oldState":{"stateValue":"OK"},"newState":{"stateValue":"ALARM","stateReason":"x"}}"#;
        let out = r#"{"version":"1.0","oldState":{"stateValue":"ALARM"},"newState":{"stateValue":"OK"}}"#;
        assert!(went_into_alarm(into));
        assert!(!went_into_alarm(out));
        assert!(!went_into_alarm("not json"));
    }
}
